"""prlkit: paramagnetic rim lesion (PRL) classification from QSM + FLAIR MRI."""

__version__ = "0.1.0"
