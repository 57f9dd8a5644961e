"""The main method end to end: cross-modal pretraining, supervised fine-tuning, threshold, calibration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from prlkit.data.patches import IMAGE_CHANNELS
from prlkit.errors import InputFileError
from prlkit.eval.folds import pretraining_split
from prlkit.methods.contract import TrainingJob
from prlkit.methods.finalize import finalize
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import TrainedModel
from prlkit.models.frodo import FrodoEnsemble, FrodoNet, with_test_time_symmetries
from prlkit.train.augment import training_augmentation
from prlkit.train.loop import FitResult, Split, fit
from prlkit.train.sampling import sampling_weights
from prlkit.train.stages import CrossModalPretraining, SupervisedFinetuning
from prlkit.weights import resolve_weights


def train_frodo(job: TrainingJob) -> tuple[TrainedModel, dict[str, FitResult]]:
    """Train the two-stream network on the job's training lesions; validation lesions drive early
    stopping; the F1 threshold and the calibration see the final module (symmetry-averaged where
    `frodo.test_time_symmetries` says so). Stage 1 (no labels) learns from every
    development lesion (train and validation), holding out `pretrain.val_fraction` of the
    participants for its own early stopping. Returns the model and each stage's fit."""
    config = job.config
    train = lesion_split(job.patch_set, job.train_index, IMAGE_CHANNELS)
    val = lesion_split(job.patch_set, job.val_index, IMAGE_CHANNELS)
    fits: dict[str, FitResult] = {}
    members = []
    for k in range(config.frodo.seeds):  # one network, or prlkit's seed ensemble
        member_config = dataclasses.replace(config, finetune=dataclasses.replace(
            config.finetune, seed=config.finetune.seed + k), pretrain=dataclasses.replace(
            config.pretrain, seed=config.pretrain.seed + k, weights=member_weights(config.pretrain.weights, k)))
        member_dir = job.run_dir if config.frodo.seeds == 1 else job.run_dir / f"seed{k}"
        member = dataclasses.replace(job, config=member_config, run_dir=member_dir)
        net, member_fits = _train_one(member, train, val)
        members.append(net)
        fits |= {name if config.frodo.seeds == 1 else f"{name}-seed{k}": value for name, value in member_fits.items()}
    module = with_test_time_symmetries(members[0] if len(members) == 1 else FrodoEnsemble(members),
                                       config.frodo.test_time_symmetries)
    model = finalize(job, module, network="frodo", model_config=config.frodo, val=val, fits=fits)
    return model, fits


def member_weights(weights: str | tuple[str, ...], k: int) -> str:
    """The `pretrain.weights` source of ensemble member `k`: its own entry of a list, else the one source."""
    return weights[k] if isinstance(weights, tuple) else weights


def _train_one(job: TrainingJob, train: Split, val: Split) -> tuple[FrodoNet, dict[str, FitResult]]:
    """Both stages of one network seeded by the job's `finetune.seed`."""
    config, run_dir, device, resume, progress = job.config, job.run_dir, job.device, job.resume, job.progress
    seed = config.finetune.seed
    fits: dict[str, FitResult] = {}
    net = FrodoNet(config.frodo, seed=seed)
    if config.pretrain.weights:
        load_network_weights(net, resolve_weights(config.pretrain.weights, config.frodo, config.susceptibility))
    elif config.pretrain.encoders:
        net.load_pretrained_state_dict(read_encoders(Path(config.pretrain.encoders)))
    elif config.pretrain.kind != "none":
        development = job.patch_set.lesions.loc[np.sort(np.r_[job.train_index, job.val_index])]
        pre_train, pre_val = (lesion_split(job.patch_set, index, IMAGE_CHANNELS) for index in
                              pretraining_split(development, config.pretrain.val_fraction, config.pretrain.seed))
        pretraining = CrossModalPretraining(
            FrodoNet(config.frodo, seed=seed), len(pre_train.y), config.pretrain.batch_size, config.pretrain.kind,
            config.pretrain.stop_gradient, config.pretrain.temperature, seed=seed,
        )
        fits["pretrain"] = fit(
            pretraining, pre_train, pre_val, config.pretrain, run_dir / "pretrain", device,
            augment=training_augmentation(config.pretrain), resume=resume, progress=progress, description="pretrain",
        )
        net.load_pretrained_state_dict(pretraining.net.pretrained_state_dict())
    train_labels = train.y.numpy()
    voxels = job.patch_set.lesions.loc[job.train_index, "voxels"].to_numpy()
    finetuning = SupervisedFinetuning(net, train_labels, config.finetune.batch_size,
                                      config.finetune.supcon_temperature,
                                      sampling_weights(config.finetune.sampler, train_labels, voxels))
    fits["finetune"] = fit(
        finetuning, train, val, config.finetune, run_dir / "finetune", device,
        augment=training_augmentation(config.finetune), resume=resume, progress=progress, description="finetune",
    )
    return net, fits


def read_encoders(path: Path) -> dict[str, torch.Tensor]:
    """Pretrained encoder weights from a safetensors file (`prlkit convert-checkpoint best.pt`)."""
    return _read_safetensors(path, "pretrained encoders")


def load_network_weights(net: FrodoNet, path: Path) -> None:
    """Initialise every layer of `net` from a safetensors file (`pretrain.weights`; a symmetry-averaged
    model's file holds the same network under `net.`); weights of a network with other frodo settings
    are a one-line error naming the first mismatching tensor."""
    state = _read_safetensors(path, "pretrained network weights")
    if state and all(key.startswith("net.") for key in state):
        state = {key.removeprefix("net."): value for key, value in state.items()}
    expected = net.state_dict()
    wrong = sorted(set(expected) ^ set(state)) or [k for k in expected if state[k].shape != expected[k].shape]
    if wrong:
        raise InputFileError(path, f"weights of a network with other frodo settings (first mismatch: {wrong[0]}); "
                                   f"use the frodo settings they were trained with")
    net.load_state_dict(state)


def _read_safetensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise InputFileError(path, f"{what} file not found") from None
    except (OSError, SafetensorError) as error:
        raise InputFileError(path, f"not a readable safetensors file ({error})") from None
