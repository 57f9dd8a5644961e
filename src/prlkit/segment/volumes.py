"""One session as the segmentation network sees it: normalised image channels and 3-class targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prlkit.config import Config
from prlkit.data.bids import SessionFiles
from prlkit.data.patches import normalise_flair, normalise_susceptibility
from prlkit.data.session import SessionData, load_session

BACKGROUND, NON_PRL, PRL = 0, 1, 2
CLASS_NAMES = ("background", "nonPRL", "PRL")


@dataclass(frozen=True)
class SegmentVolume:
    """Image (C, X, Y, Z) float32 in patch-cache channel order [QSM or phase, FLAIR(, lesion mask)], 3-class
    target (uint8), lesion instances and the session's lesion table; `session` keeps files and affine."""

    session: SessionData
    image: np.ndarray
    target: np.ndarray

    @property
    def instances(self) -> np.ndarray:
        return self.session.instances

    @property
    def lesions(self) -> pd.DataFrame:
        return self.session.lesions


def image_channels(session: SessionData, config: Config) -> np.ndarray:
    """The susceptibility channel (QSM, or phase input's field shift) and FLAIR normalised exactly as the lesion
    patches are (per session), plus the mask if asked."""
    channels = [
        normalise_susceptibility(session, config.patches),
        normalise_flair(session.flair, config.patches.flair_percentiles),
    ]
    if config.segment.lesion_channel:
        channels.append((session.instances > 0).astype(np.float32))
    return np.stack(channels)


def class_targets(instances: np.ndarray, lesions: pd.DataFrame) -> np.ndarray:
    """0 background, 1 non-PRL lesion, 2 PRL lesion, by each lesion's rim label through a look-up table.

    Every annotated lesion counts, small (excluded) ones too; a lesion without a rim label is non-PRL.
    """
    lookup = np.zeros(int(instances.max(initial=0)) + 1, dtype=np.uint8)
    rim = lesions["rim"].fillna(0).astype(int).to_numpy()
    lookup[lesions["index"].to_numpy(dtype=int)] = np.where(rim == 1, PRL, NON_PRL)
    return lookup[instances]


def segment_volume(session: SessionData, config: Config) -> SegmentVolume:
    """One loaded session as the network sees it."""
    return SegmentVolume(session=session, image=image_channels(session, config),
                         target=class_targets(session.instances, session.lesions))


def load_segment_volume(files: SessionFiles, config: Config) -> SegmentVolume:
    """Read, check and prepare one session (see `prlkit.data.session.load_session`)."""
    return segment_volume(load_session(files, config.lesions), config)
