"""Configuration as data: dataclasses with named profiles, saved next to every output.

Profiles: `paper` follows the published protocol (32³ patches); `quick` makes CPU demos and
tests practical (24³ patches). A YAML or JSON file may override any field; unknown keys are
errors so that a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prlkit.atomic import write_text_atomic
from prlkit.errors import InputFileError, PrlkitError


@dataclass(frozen=True)
class LesionConfig:
    """How lesion instances are derived from the lesion map."""

    connectivity: int = 26  # 6, 18 or 26: neighbourhood for connected components of a binary mask
    min_voxels: int = 110  # smaller lesions are kept in the table with excluded=too_small
    map_kind: str = "auto"  # auto | binary | instance (auto: instance if labels > 1 or a rim table exists)

    def __post_init__(self) -> None:
        if self.connectivity not in (6, 18, 26):
            raise PrlkitError(f"lesions.connectivity must be 6, 18 or 26, not {self.connectivity}")
        if self.map_kind not in ("auto", "binary", "instance"):
            raise PrlkitError(f"lesions.map_kind must be auto, binary or instance, not {self.map_kind!r}")
        if self.min_voxels < 0:
            raise PrlkitError(f"lesions.min_voxels must be >= 0, not {self.min_voxels}")


@dataclass(frozen=True)
class PatchConfig:
    """Lesion-centred cubes: size, per-participant intensity normalisation and gating."""

    size: int = 32  # cube edge in voxels, centred on the lesion's centre of mass
    flair_percentiles: tuple[float, float] = (0.5, 99.5)  # mapped to [0, 1] over brain voxels
    qsm_window_ppm: tuple[float, float] = (-0.15, 0.25)  # clipped, then divided by max(|lo|, |hi|)
    gate: bool = True  # zero everything outside the dilated lesion mask
    gate_k: float = 0.5  # dilation radius r = ceil(k * lesion_voxels^(1/3)) voxels

    def __post_init__(self) -> None:
        if self.size < 4 or self.size % 2:
            raise PrlkitError(f"patches.size must be an even number >= 4, not {self.size}")
        low, high = self.flair_percentiles
        if not 0 <= low < high <= 100:
            raise PrlkitError(f"patches.flair_percentiles must satisfy 0 <= low < high <= 100, not {low}, {high}")
        low, high = self.qsm_window_ppm
        if not low < 0 < high:
            raise PrlkitError(f"patches.qsm_window_ppm must satisfy low < 0 < high, not {low}, {high}")
        if self.gate_k <= 0:
            raise PrlkitError(f"patches.gate_k must be > 0, not {self.gate_k}")


@dataclass(frozen=True)
class TrainConfig:
    """One training stage: AdamW, gradient clipping, early stopping on the validation score."""

    max_epochs: int = 200
    batch_size: int = 10
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    grad_clip_norm: float = 1.0
    patience: int = 20  # epochs without improvement of the validation score before stopping
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise PrlkitError(f"train.{name} must be >= 1, not {getattr(self, name)}")


@dataclass(frozen=True)
class Config:
    """Everything a run decided; written next to its outputs."""

    profile: str = "paper"
    lesions: LesionConfig = field(default_factory=LesionConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)


PROFILES: dict[str, Config] = {
    "paper": Config(profile="paper"),
    "quick": Config(profile="quick", patches=PatchConfig(size=24)),
}


def get_profile(name: str) -> Config:
    """The named profile (`paper` or `quick`)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise PrlkitError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) ready for JSON or YAML."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Apply `data` (possibly partial) on top of `base` (default: its `profile`, else `paper`)."""
    if base is None:
        base = get_profile(data.get("profile", "paper"))
    return _merge(base, data, prefix="")


def _merge(obj: Any, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise PrlkitError(f"config section {prefix.rstrip('.') or '(top)'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in data.items():
        if key not in fields:
            raise PrlkitError(f"unknown config key {prefix}{key}; known: {', '.join(fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, prefix=f"{prefix}{key}.")
        elif isinstance(current, tuple):
            changes[key] = tuple(value)
        else:
            changes[key] = value
    return dataclasses.replace(obj, **changes)


def load_config(path: Path | str) -> Config:
    """Read a YAML or JSON config file (partial files override their profile's defaults)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputFileError(path, f"cannot read config: {error.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise InputFileError(path, f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}") from None
    try:
        return config_from_dict(data or {})
    except PrlkitError as error:
        raise InputFileError(path, str(error)) from None


def save_config(config: Config, path: Path | str) -> None:
    """Write the config as YAML (or JSON when the name ends in .json), atomically."""
    path = Path(path)
    data = config_to_dict(config)
    text = json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    write_text_atomic(path, text)
