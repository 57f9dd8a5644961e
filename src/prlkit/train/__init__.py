"""Training pieces: losses and augmentation (the loop itself lives in ``train.loop``)."""
