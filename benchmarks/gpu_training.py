"""GPU training speed: throughput of one method's training step, each optimisation's effect, and a timed CV.

`train_throughput` times supervised training steps (forward, BCE loss, backward, AdamW) of a
registered network on patches held either on the device (the patch cache on the GPU: one gather per
batch) or in host memory (one host-to-device copy per batch), with optional bf16 autocast,
channels_last_3d and torch.compile. FLOPs per sample (forward + backward) come from torch's
FlopCounterMode on one step. It runs on any device, so tests exercise it on CPU with tiny sizes.
The SupCon and pretraining losses are not in the step: they cost little next to the network.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from prlkit.config import get_profile
from prlkit.methods.networks import build_network
from prlkit.methods.registry import METHODS

# dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets, by a substring of the device name
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0}


@dataclass(frozen=True)
class Variant:
    """One training setting: bf16 autocast, channels_last_3d, torch.compile, patch cache on the device."""

    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    cache_on_device: bool = True


# each optimisation added to the one before; "host cache" removes the last one from the full set
LADDER = {
    "fp32": Variant(),
    "+bf16 autocast": Variant(bf16=True),
    "+channels_last_3d": Variant(bf16=True, channels_last=True),
    "+torch.compile": Variant(bf16=True, channels_last=True, compile=True),
    "all but patch cache on host": Variant(bf16=True, channels_last=True, compile=True, cache_on_device=False),
}


def bf16_peak_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak, when its name is known."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(method: str, device: torch.device, variant: Variant = Variant(), *, size: int = 32,
                     batch: int = 64, steps: int = 20, warmup: int = 3, cache_lesions: int = 512,
                     model_config: dict | None = None, seed: int = 0) -> dict:
    """Samples/s, seconds/step, forward+backward FLOPs per sample and achieved TFLOP/s of `method`'s training step."""
    generator = torch.Generator().manual_seed(seed)
    net = build_network(METHODS[method].network, model_config or {}).to(device).train()
    cache = torch.randn(cache_lesions, 3, size, size, size, generator=generator)
    labels = (torch.rand(cache_lesions, generator=generator) < 0.5).float()
    if variant.cache_on_device:
        cache, labels = cache.to(device), labels.to(device)
    elif device.type == "cuda":
        cache = cache.pin_memory()  # host cache: one asynchronous copy per batch
    memory_format = torch.channels_last_3d if variant.channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    forward = torch.compile(net) if variant.compile else net
    order = torch.randint(0, cache_lesions, (warmup + steps + 1, batch), generator=generator)

    def step(index: torch.Tensor, model: torch.nn.Module = forward) -> None:
        x = cache[index.to(cache.device)].to(device, non_blocking=True).contiguous(memory_format=memory_format)
        y = labels[index.to(labels.device)].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant.bf16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    counter = FlopCounterMode(display=False)
    with counter:
        step(order[0], net)  # eager, counted once (compiled graphs hide their operations from the counter)
    flops_per_sample = counter.get_total_flops() / batch
    for index in order[1 : 1 + warmup]:
        step(index)
    synchronize(device)
    start = time.perf_counter()
    for index in order[1 + warmup :]:
        step(index)
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    peak = bf16_peak_tflops(device)
    tflops = flops_per_sample * batch / seconds / 1e12
    return {"method": method, "device": str(device), **asdict(variant), "batch": batch, "patch": size,
            "seconds_per_step": seconds, "samples_per_s": batch / seconds, "gflop_per_sample": flops_per_sample / 1e9,
            "tflop_s": tflops, "fraction_of_bf16_peak": tflops / peak if peak else None}


def optimisation_ladder(method: str, device: torch.device, variants: dict[str, Variant] = LADDER,
                        **kwargs) -> list[dict]:
    """`train_throughput` per variant in one run, each with its speed-up over the first variant and the one before."""
    rows = [{"variant": name, **train_throughput(method, device, variant, **kwargs)}
            for name, variant in variants.items()]
    for before, row in zip([rows[0], *rows[:-1]], rows):
        row["vs_fp32"] = row["samples_per_s"] / rows[0]["samples_per_s"]
        row["vs_previous"] = row["samples_per_s"] / before["samples_per_s"]
    return rows


def timed_cv(dataset: Path, out: Path, cache_dir: Path, device: str = "cuda", methods: str = "frodo") -> dict:
    """Wall time of `prlkit cv --profile paper` (SSL pretraining included) and of each fold (from when its model
    file appeared)."""
    start = time.time()
    subprocess.run([sys.executable, "-m", "prlkit", "cv", str(dataset), "--methods", methods, "--profile", "paper",
                    "--device", device, "--out", str(out), "--cache-dir", str(cache_dir), "--no-progress"],
                   check=True)
    total = time.time() - start
    finished = sorted(p.stat().st_mtime for p in out.glob(f"{methods.split(',')[0]}/fold-*/model.json"))
    folds = [b - a for a, b in zip([start, *finished[:-1]], finished)]
    return {"cv_seconds": total, "fold_seconds": folds, "folds": len(folds)}


def paper_sizes(method: str) -> dict:
    """The `paper` profile's patch size and (for frodo) network widths, as `train_throughput` keywords."""
    profile = get_profile("paper")
    config = asdict(profile.frodo) if METHODS[method].network == "frodo" else None
    return {"size": profile.patches.size, "batch": profile.finetune.batch_size, "model_config": config}
