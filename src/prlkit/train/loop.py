"""One training loop for every stage and method: schedules, early stopping, checkpoints, exact resume.

Every epoch draws its randomness (sampling, augmentation, dropout) from a generator seeded by
(seed, epoch), so a run resumed from the checkpoint of epoch e repeats exactly what an
uninterrupted run does from e on. bf16 autocast is used on CUDA only; CPU runs in float32.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load_file
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from prlkit.atomic import write_text_atomic
from prlkit.config import TrainConfig
from prlkit.errors import PrlkitError
from prlkit.modelfile import write_safetensors
from prlkit.train.checkpoint import load_checkpoint, save_checkpoint
from prlkit.train.schedule import learning_rate_at

OPTIMIZER_CLASSES = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}  # Adam: weight decay as L2


class Stage(Protocol):
    """What the loop trains: a module, its loss on a batch and its validation score.

    A stage with `takes_features = True` also gets the batch's lesion features: loss(x, y, features=f)
    and score(x, y, features=f).
    """

    module: torch.nn.Module  # every trainable parameter (network, heads, learnable loss weights)
    monitor: str  # "max" or "min": direction in which the validation score improves
    score_name: str

    def batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        """Index batches of one epoch into the training arrays."""

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scalar training loss of one (augmented) batch."""

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Validation score (module in eval mode, no gradients)."""


@dataclass(frozen=True)
class Split:
    """Patches (float16 or float32, any device), labels and lesion features (float64) of one split."""

    x: torch.Tensor
    y: torch.Tensor
    features: torch.Tensor | None = None


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    history: list[dict] = field(default_factory=list)


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device of a --device value: `auto` -> CUDA when available, else CPU. A name that is no device,
    or a GPU this machine lacks, is a PrlkitError now rather than a PyTorch error at the first tensor moved."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise PrlkitError(f"--device {name}: not a device prlkit runs on; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise PrlkitError(f"--device {name}: PyTorch finds no CUDA GPU on this machine; use cpu or auto")
        if (device.index or 0) >= count:
            raise PrlkitError(f"--device {name}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise PrlkitError(f"--device {name}: Apple's MPS is not available on this machine; use cpu or auto")
    return device


def parameter_groups(module: torch.nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Optimiser groups: weight decay on weight matrices/kernels only, not on biases, norms or scalars;
    with `decay_all`, on every parameter (the authors' AdamW over all parameters)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if decay_all:
        return [{"params": params, "weight_decay": weight_decay}]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible seed per (run seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7919) % (2**63 - 1)


def windowed_score(scores: list[float], window: int) -> float:
    """The mean of the last `window` validation scores (fewer in the first epochs): what early stopping watches."""
    return sum(scores[-window:]) / len(scores[-window:])


def _improved(score: float, best: float | None, monitor: str) -> bool:
    if math.isnan(score):
        return False
    return best is None or (score > best if monitor == "max" else score < best)


def fit(
    stage: Stage,
    train: Split,
    val: Split,
    config: TrainConfig,
    run_dir: Path,
    device: torch.device,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    resume: bool = False,
    progress: bool = True,
    description: str = "train",
) -> FitResult:
    """Train `stage.module` (config's optimiser and schedule, clipping, early stopping); leave it at its best
    epoch (`config.keep: best`) or at its last (`last`: validation only reports, e.g. a fixed epoch budget).
    With `config.score_window` > 1, "best" is the epoch ending the best run of that many validation scores.
    With `config.average_fraction`, `last` is the mean of the weights after each of the last epochs
    (`config.averaged_epochs` of them).

    Writes `metrics.jsonl` (one line per epoch), `checkpoint.*` (every epoch, for `resume`) and
    `best.safetensors` (weights of the best validation epoch) into `run_dir`.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    module = stage.module.to(device)
    groups = parameter_groups(module, config.weight_decay, config.weight_decay_all)
    optimizer = OPTIMIZER_CLASSES[config.optimizer](groups, lr=config.learning_rate)
    state = {"epoch": 0, "best_score": None, "best_epoch": -1, "bad_epochs": 0, "history": []}
    average = AveragedModel(module, use_buffers=True) if config.averaged_epochs else None
    if resume and (run_dir / "checkpoint.json").is_file():
        state = load_checkpoint(run_dir, module, optimizer, average)
    use_bf16 = device.type == "cuda"
    with_features = getattr(stage, "takes_features", False)
    bar = tqdm(total=config.max_epochs, initial=state["epoch"], desc=description, unit="epoch", disable=not progress)
    while state["epoch"] < config.max_epochs and state["bad_epochs"] < config.patience:
        epoch = state["epoch"]
        generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        torch.manual_seed(epoch_seed(config.seed, epoch))  # dropout and other global-RNG users
        learning_rate = learning_rate_at(config, epoch, [row[stage.score_name] for row in state["history"]],
                                         stage.monitor)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        module.train()
        losses = []
        for index in stage.batches(generator):
            x = train.x[index.to(train.x.device)].to(device, torch.float32, non_blocking=True)
            y = train.y[index.to(train.y.device)].to(device, non_blocking=True)
            if augment is not None:
                x = augment(x, generator)
            extra = {"features": train.features[index.to(train.features.device)].to(device)} if with_features else {}
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = stage.loss(x, y, **extra)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip_norm)
            optimizer.step()
            losses.append(loss.detach())
        module.eval()
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            extra = {"features": val.features.to(device)} if with_features else {}
            score = float(stage.score(val.x.to(device, torch.float32), val.y.to(device), **extra))
        train_loss = float(torch.stack(losses).mean()) if losses else float("nan")
        monitored = windowed_score([row[stage.score_name] for row in state["history"]] + [score], config.score_window)
        if _improved(monitored, state["best_score"], stage.monitor):
            state |= {"best_score": monitored, "best_epoch": epoch, "bad_epochs": 0}
            write_safetensors(run_dir / "best.safetensors", module.state_dict())
        else:
            state["bad_epochs"] += 1
        state["history"].append({"epoch": epoch, "learning_rate": learning_rate, "train_loss": train_loss,
                                 stage.score_name: score})
        state["epoch"] = epoch + 1
        if average is not None and epoch >= config.max_epochs - config.averaged_epochs:
            average.update_parameters(module)
        write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in state["history"]))
        save_checkpoint(run_dir, module, optimizer, state, average)
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.4f}", **{stage.score_name: f"{score:.4f}"})
    bar.close()
    if state["best_epoch"] >= 0 and config.keep == "best":
        module.load_state_dict(load_file(str(run_dir / "best.safetensors"), device=str(device)))
    elif average is not None and int(average.n_averaged) > 0:
        module.load_state_dict(average.module.state_dict())
    return FitResult(
        best_epoch=state["best_epoch"],
        best_score=float("nan") if state["best_score"] is None else state["best_score"],
        epochs_run=state["epoch"],
        history=state["history"],
    )
