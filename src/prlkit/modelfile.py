"""A trained model on disk: `model.safetensors` (weights) + `model.json` (everything else).

The JSON says which method built the weights, with which settings, on which data, which
decision threshold was chosen on validation data, and (`software`, absent from older files) the
versions of prlkit, Python and the numerical libraries that trained it. Loading parses JSON and safetensors only:
nothing in a model folder is ever executed or unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from prlkit import __version__
from prlkit.atomic import atomic_path, write_text_atomic
from prlkit.errors import InputFileError
from prlkit.eval.calibration import CALIBRATION_METHODS
from prlkit.provenance import software_versions

MODEL_FORMAT = 1
REQUIRED = {
    "format": int,
    "method": str,
    "model_config": dict,  # keyword arguments of the method's builder
    "config": dict,  # the prlkit Config (lesions, patches, training) the model was trained with
    "threshold": float,  # Rim+ decision threshold (F1-optimal on validation)
    "training": dict,  # data summary, epochs, validation scores
    "prlkit_version": str,
}


def save_model(folder: Path, module: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Write weights and metadata atomically; `meta` holds every REQUIRED key but format/version (the software
    versions are added here, the one place model files are written)."""
    meta = {"format": MODEL_FORMAT, "prlkit_version": __version__} | meta | {"software": software_versions()}
    _check_meta(meta, folder / "model.json")
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "model.safetensors", module.state_dict())
    write_text_atomic(folder / "model.json", json.dumps(meta, indent=2) + "\n")


def write_safetensors(final: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write tensors to a safetensors file atomically; an I/O failure (a full disk) is an OSError naming `final`.

    safetensors reports I/O errors as SafetensorError, e.g. `... I/O error: No space left on device (os error 28)`.
    """
    with atomic_path(final) as tmp:
        try:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        except SafetensorError as error:
            io = re.search(r"I/O error: (.+) \(os error (\d+)\)", str(error))
            raise OSError(int(io[2]) if io else None, io[1] if io else str(error), str(final)) from None


def read_model(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Validated metadata and the weight tensors of a model folder."""
    meta_path, weights_path = folder / "model.json", folder / "model.safetensors"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(meta_path, "no model.json: not a prlkit model folder") from None
    except (OSError, ValueError) as error:
        raise InputFileError(meta_path, f"not valid JSON ({error})") from None
    _check_meta(meta, meta_path)
    try:
        tensors = load_file(str(weights_path))
    except FileNotFoundError:
        raise InputFileError(weights_path, "weights file missing") from None
    except (OSError, SafetensorError) as error:
        raise InputFileError(weights_path, f"not a readable safetensors file ({error})") from None
    return meta, tensors


def load_weights(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Load weights strictly: a missing, extra or mis-shaped tensor is an error naming the file."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise InputFileError(path, f"weights do not fit the model in model.json ({first})") from None


def _check_meta(meta: Any, path: Path) -> None:
    if not isinstance(meta, dict):
        raise InputFileError(path, "model metadata must be a JSON object")
    for key, kind in REQUIRED.items():
        if key not in meta:
            raise InputFileError(path, f"model metadata lacks {key!r}")
        value = meta[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (numeric if kind is float else isinstance(value, kind)):
            raise InputFileError(path, f"model metadata {key!r} must be a {kind.__name__}")
    if meta["format"] != MODEL_FORMAT:
        raise InputFileError(path, f"model format {meta['format']} is not supported (expected {MODEL_FORMAT})")
    if not 0.0 <= meta["threshold"] <= 1.0:
        raise InputFileError(path, f"threshold {meta['threshold']} is outside [0, 1]")
    _check_calibration(meta.get("calibration"), path)


def _check_calibration(calibration: Any, path: Path) -> None:
    """`calibration` (optional; older models have none): a known method and exactly its numeric parameters."""
    if calibration in (None, {}):
        return
    if not isinstance(calibration, dict):
        raise InputFileError(path, "model metadata 'calibration' must be a JSON object")
    method = calibration.get("method")
    if method not in CALIBRATION_METHODS:
        raise InputFileError(path, f"unknown calibration method {method!r} (known: {', '.join(CALIBRATION_METHODS)})")
    expected = {field.name for field in dataclasses.fields(CALIBRATION_METHODS[method])}
    given = set(calibration) - {"method"}
    if given != expected:
        raise InputFileError(path, f"calibration {method!r} takes exactly the parameters {', '.join(sorted(expected))}"
                             f" (found {', '.join(sorted(given)) or 'none'})")
    for key in expected:
        value = calibration[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputFileError(path, f"calibration parameter {key!r} must be a number")


def check_patch_size(meta_path: Path, configured: int, trained: int | None) -> None:
    """Refuse a model.json whose patch size differs from the one its weights were trained at (recorded
    at training; None in models saved before it was): the probabilities would silently change."""
    if trained is not None and configured != trained:
        raise InputFileError(meta_path, f"patch size {configured} in the config, but the weights were trained on "
                                        f"{trained}^3 patches (trained_patch_size); restore {trained}")
