"""CPU speed of the frodo network: training step (batch 10) and inference throughput (batch 8).

Prints one row per (width profile, patch size, memory format): seconds for one forward+backward
of 10 patches (best wall-clock of the iterations, and the process CPU seconds of that step),
inference lesions/s at batch 8 (best iteration), forward GFLOP per lesion. CPU seconds resist
other jobs on the machine better than wall time: with ``--threads 1`` they estimate the
single-core cost.
Run: ``PYTHONPATH=src python benchmarks/frodo_cpu_speed.py [--iters 3] [--sizes 24 32]``.
Short on purpose (a few iterations each): the machine is shared, expect +-20-30 % noise.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from prlkit.config import FrodoConfig, get_profile
from prlkit.models.frodo import FrodoNet, count_flops

CANDIDATES: dict[str, FrodoConfig] = {
    "base 16 (paper, authors)": get_profile("paper").frodo,
    "base 16 stem-stride 2": FrodoConfig(base_width=16, stem_stride=2),
    "base 8": FrodoConfig(base_width=8),
    "base 8 s2 BatchNorm (quick)": get_profile("quick").frodo,
    "base 4 stem-stride 2": FrodoConfig(base_width=4, stem_stride=2),
}


def _best_seconds(step, iters: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of the same iteration) over ``iters`` calls after one warm-up."""
    step()  # warm-up (allocator, oneDNN primitive cache)
    times = []
    for _ in range(iters):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(times)


def bench(config: FrodoConfig, size: int, channels_last: bool, iters: int) -> tuple[float, float, float]:
    """(wall s and CPU s per forward+backward of 10 patches, inference lesions/s at batch 8)."""
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = FrodoNet(config, seed=0).to(memory_format=fmt)
    gen = torch.Generator().manual_seed(0)
    x_train = torch.randn(10, 2, size, size, size, generator=gen).contiguous(memory_format=fmt)
    x_infer = x_train[:8].contiguous(memory_format=fmt)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        model(x_train).sum().backward()

    def infer_step() -> None:
        with torch.inference_mode():
            model(x_infer)

    model.train()
    train_wall, train_cpu = _best_seconds(train_step, iters)
    model.eval()
    infer_wall, _ = _best_seconds(infer_step, iters)
    return train_wall, train_cpu, 8 / infer_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[24, 32])
    parser.add_argument("--only", nargs="*", default=None, help="substrings of candidate names to run")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, iters {args.iters}, load average {load}")
    row = "{:<24} {:>3} {:<14} {:>8} {:>12} {:>13} {:>11} {:>14}"
    print(row.format("widths", "S", "format", "params", "GFLOP/lesion", "fwd+bwd b10 s", "(CPU s)", "infer b8 les/s"))
    for name, config in CANDIDATES.items():
        if args.only and not any(s in name for s in args.only):
            continue
        with torch.device("meta"):  # shapes only, for parameter and FLOP counts
            meta_model = FrodoNet(config)
        params = sum(p.numel() for p in meta_model.parameters())
        for size in args.sizes:
            gflop = count_flops(meta_model, (1, 2, size, size, size)) / 1e9
            for channels_last in (False, True):
                train_wall, train_cpu, lesions_per_s = bench(config, size, channels_last, args.iters)
                fmt = "channels_last" if channels_last else "contiguous"
                cells = (name, size, fmt, params, f"{gflop:.2f}", f"{train_wall:.3f}", f"{train_cpu:.3f}",
                         f"{lesions_per_s:.1f}")
                print(row.format(*cells), flush=True)


if __name__ == "__main__":
    main()
