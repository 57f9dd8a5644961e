"""The authors' released checkpoints (veronicapignedoli/FRODO) as prlkit weights.

Their ``train.py`` saves the whole ``MultiModalClassifier`` state dict (``fold_k.pt``); their
``train_ssl.py`` saves the two encoders only (``best.pt``). Parameter names map one to one onto
:class:`prlkit.models.frodo.FrodoNet`; the squeeze-and-excitation 1x1x1 convolutions become the
equal Linear layers of MONAI's SE block. Files are read with ``torch.load(weights_only=True)``, so
no code stored in them ever runs.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from prlkit.config import FrodoConfig
from prlkit.errors import InputFileError

# (authors' name prefix, prlkit's), tried in order; the rest of the name is kept.
_PREFIXES: tuple[tuple[str, str], ...] = (
    *((f"{m}_stem.{a}.", f"{m}_encoder.{p}.") for m in ("qsm", "flair")
      for a, p in (("stem", 0), ("block1a", 1), ("block1b", 2), ("block2a", 3), ("block2b", 4))),
    ("film.gamma_conv.", "film.gamma."),
    ("film.beta_conv.", "film.beta."),
    ("fuse_conv.", "film.mix."),
    *((f"block{s}a.", f"deep.{s - 3}.0.") for s in (3, 4)),
    *((f"block{s}b.", f"deep.{s - 3}.1.") for s in (3, 4)),
    *((f"se{s}.fc1.", f"deep.{s - 3}.2.fc.0.") for s in (3, 4)),
    *((f"se{s}.fc2.", f"deep.{s - 3}.2.fc.2.") for s in (3, 4)),
    ("classifier.pre.1.", "head.hidden.0."),
    ("classifier.out.", "head.out."),
)
_SE_WEIGHT = re.compile(r"^se\d\.fc\d\.weight$")
ENCODER_PREFIXES = ("qsm_stem.", "flair_stem.")


def prlkit_name(name: str) -> str | None:
    """prlkit's name of one of the authors' parameters, or None if it is not theirs."""
    for theirs, ours in _PREFIXES:
        if name.startswith(theirs):
            return ours + name[len(theirs):]
    return None


def convert_state_dict(state: dict[str, torch.Tensor], source: Path | str = "state dict") -> dict[str, torch.Tensor]:
    """The authors' state dict with prlkit's names and shapes (float32); a foreign key is an error naming `source`."""
    converted = {}
    for name, tensor in state.items():
        ours = prlkit_name(name)
        if ours is None or not torch.is_tensor(tensor):
            raise InputFileError(source, f"{name!r} is not a parameter of the authors' MultiModalClassifier")
        value = tensor.detach().to(torch.float32)
        converted[ours] = value.flatten(1) if _SE_WEIGHT.match(name) else value
    return converted


def is_encoder_only(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict holds the two encoders only (``train_ssl.py``'s ``best.pt``)."""
    return all(name.startswith(ENCODER_PREFIXES) for name in state)


def network_config(state: dict[str, torch.Tensor], source: Path | str = "state dict",
                   dropout: float = 0.5) -> FrodoConfig:
    """The `paper` network settings that fit the authors' weights (their base width from the stem's shape)."""
    stem = state.get("qsm_stem.stem.weight")
    if stem is None or stem.ndim != 5 or stem.shape[1:] != (1, 3, 3, 3):
        raise InputFileError(source, "no QSM stem convolution (qsm_stem.stem.weight, (C, 1, 3, 3, 3)): not a FRODO "
                             "checkpoint")
    return FrodoConfig(base_width=int(stem.shape[0]), dropout=dropout)


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict saved by the authors' scripts, loaded without executing anything from the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputFileError(path, f"not a PyTorch state dict that loads with weights_only=True ({first})") from None
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise InputFileError(path, "not a state dict (a mapping of parameter names to tensors)")
    return dict(state)
