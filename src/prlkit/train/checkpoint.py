"""Training state on disk without pickles: tensors in safetensors, everything else in JSON.

A checkpoint holds the modules' weights, the optimiser state (its tensors flattened into
safetensors keys, its hyper-parameters in JSON) and the loop's own counters, so an
interrupted run resumes exactly where it stopped. Loading never executes code from the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from prlkit.atomic import write_text_atomic
from prlkit.errors import InputFileError
from prlkit.modelfile import write_safetensors


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        plain["state"][str(index)] = {}
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain["state"][str(index)][key] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(values) for i, values in plain["state"].items()}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_checkpoint(folder: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, loop_state: dict,
                    average: torch.nn.Module | None = None) -> None:
    """Write `checkpoint.safetensors` + `checkpoint.json` (the JSON last: it marks a complete checkpoint);
    `average`: a weight average kept beside the module (`train.average_fraction`), saved with it."""
    tensors, optimizer_plain = _flatten_optimizer(optimizer.state_dict())
    tensors |= {f"module.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if average is not None:
        tensors |= {f"average.{k}": v.detach().cpu().contiguous() for k, v in average.state_dict().items()}
    write_safetensors(folder / "checkpoint.safetensors", tensors)
    write_text_atomic(folder / "checkpoint.json", json.dumps({"optimizer": optimizer_plain, "loop": loop_state}))


def load_checkpoint(folder: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    average: torch.nn.Module | None = None) -> dict:
    """Restore module, optimiser and (when saved) the weight average in place; return the loop state."""
    meta_path = folder / "checkpoint.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tensors = load_file(str(folder / "checkpoint.safetensors"))
    except (OSError, ValueError) as error:
        raise InputFileError(meta_path, f"cannot resume from this checkpoint: {error}") from None
    module.load_state_dict({k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")})
    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
    optimizer.load_state_dict(_unflatten_optimizer(optimizer_tensors, meta["optimizer"]))
    saved_average = {k[len("average."):]: v for k, v in tensors.items() if k.startswith("average.")}
    if average is not None and saved_average:
        average.load_state_dict(saved_average)
    return meta["loop"]


RESUME_FILES = ("checkpoint.json", "checkpoint.safetensors", "best.safetensors")


def discard_resume_state(folder: Path) -> None:
    """Delete the checkpoints and best-epoch weights under `folder` once its model is saved: they serve only a
    rerun of unfinished work, and a wide network's stay large (ResNet-18: about 0.5 GB per stage); the
    `metrics.jsonl` files stay. `checkpoint.json` goes first, so a half-deleted folder is not resumable."""
    for name in RESUME_FILES:
        for path in sorted(folder.rglob(name)):
            path.unlink()


def has_resumable_work(folder: Path) -> bool:
    """Whether a run left anything in `folder` that rerunning it continues from: a checkpoint or a finished model."""
    return any(next(folder.rglob(name), None) for name in ("checkpoint.json", "model.json"))
