"""CPU inference: network throughput against a bare-conv3d bound, and end-to-end `prlkit predict` per patient.

Part 1, per width profile (`quick`, `paper`) at its patch size: forward GFLOP per lesion
(torch's FlopCounterMode), lesions/s at batch 8 in eval mode with channels_last_3d, and the
bound: every Conv3d of the network re-run alone as a bare `F.conv3d` on tensors of the same
shapes; the network's efficiency is (sum of the bare convolutions' time) / (network time).
Part 2 (with ``--model``, a `prlkit cv` or `prlkit train` folder): `predict_sessions` on freshly
simulated participants, timed per patient, split into the network (the ensemble on the
session's patches, timed separately) and everything else (reading and checking NIfTI,
lesions, patches, writing outputs; timed with the network replaced by zeros).

Run: ``PYTHONPATH=src python benchmarks/cpu_inference.py [--model prlkit-demo/cv] [--json out.json]``.
Best of ``--repeats`` timings; the machine's other load shows as noise (the report says the load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prlkit.config import get_profile
from prlkit.data.bids import discover_cohort
from prlkit.data.patches import session_patches
from prlkit.data.session import load_session
from prlkit.models.frodo import FrodoNet, count_flops
from prlkit.predict import Ensemble, load_ensemble, predict_sessions
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile as synth_profile

BATCH = 8


def best_time(step, repeats: int) -> float:
    """Best wall-clock seconds of `step()` over `repeats` calls after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def conv_calls(net: torch.nn.Module, x: torch.Tensor) -> list[tuple[torch.nn.Conv3d, tuple[int, ...]]]:
    """Every Conv3d of `net` with the input shape it sees on `x` (forward hooks, one pass)."""
    calls = []
    hooks = [m.register_forward_hook(lambda m, args, out: calls.append((m, tuple(args[0].shape))))
             for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    with torch.no_grad():
        net(x)
    for hook in hooks:
        hook.remove()
    return calls


def bare_conv_seconds(calls: list[tuple[torch.nn.Conv3d, tuple[int, ...]]], repeats: int) -> float:
    """Sum over the network's convolutions of the best time of a bare F.conv3d of the same shapes."""
    total = 0.0
    for conv, shape in calls:
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last_3d)
        weight = conv.weight.detach().contiguous(memory_format=torch.channels_last_3d)
        with torch.no_grad():
            total += best_time(lambda: F.conv3d(x, weight, None, conv.stride, conv.padding), repeats)
    return total


def network_row(profile: str, repeats: int) -> dict:
    """Throughput, FLOPs and bare-conv efficiency of one profile's network."""
    config = get_profile(profile)
    size = config.patches.size
    net = FrodoNet(config.frodo, seed=0).eval().to(memory_format=torch.channels_last_3d)
    x = torch.randn(BATCH, 2, size, size, size).contiguous(memory_format=torch.channels_last_3d)
    flops = count_flops(net, (1, 2, size, size, size))
    with torch.no_grad():
        seconds = best_time(lambda: net(x), repeats)
    bound = bare_conv_seconds(conv_calls(net, x), repeats)
    return {"profile": profile, "patch": size, "gflop_per_lesion": flops / 1e9, "lesions_per_s": BATCH / seconds,
            "achieved_gflop_s": flops * BATCH / seconds / 1e9, "bare_conv_gflop_s": flops * BATCH / bound / 1e9,
            "efficiency": bound / seconds}


class WithoutNetwork(Ensemble):
    """The same ensemble with a free network: times everything but the network."""

    def probabilities(self, patches: np.ndarray, device: torch.device, features=None) -> np.ndarray:
        return np.zeros(len(patches))


def end_to_end(model: Path, subjects: int, repeats: int) -> dict:
    """Per-patient wall time of predict_sessions with the model's ensemble, and its network share."""
    device = torch.device("cpu")
    ensemble = load_ensemble(model)
    no_network = WithoutNetwork(ensemble.models)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_cohort(data, subjects, 4242, synth_profile("default"), jobs=1, preview=False, progress=False)
        sessions = discover_cohort(data).sessions
        rows = []
        for files in sessions:
            def run(which: Ensemble) -> None:
                predict_sessions([files], which, Path(tmp) / "out", device, progress=False)

            total, other = best_time(lambda: run(ensemble), repeats), best_time(lambda: run(no_network), repeats)
            session = load_session(files, ensemble.config.lesions)
            included = session.lesions[session.lesions["excluded"] == ""]
            patches = session_patches(session, included, ensemble.config.patches)
            network = best_time(lambda: ensemble.probabilities(patches, device), repeats)
            rows.append({"lesions": len(included), "total_s": total, "network_s": network, "other_s": other})
    return {"models": len(ensemble.models), "sessions": rows,
            "mean_total_s": float(np.mean([r["total_s"] for r in rows])),
            "mean_other_s": float(np.mean([r["other_s"] for r in rows])),
            "mean_lesions": float(np.mean([r["lesions"] for r in rows]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a prlkit cv or train folder for the end-to-end part")
    parser.add_argument("--subjects", type=int, default=3, help="simulated patients for the end-to-end part")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"{args.threads} torch threads, load {os.getloadavg()[0]:.1f}, torch {torch.__version__}",
              "network": [network_row(profile, args.repeats) for profile in ("quick", "paper")]}
    print(report["machine"])
    print(f"{'profile':8} {'patch':>5} {'GFLOP/lesion':>12} {'lesions/s':>9} {'GFLOP/s':>8} {'bare conv GFLOP/s':>17} "
          f"{'efficiency':>10}")
    for r in report["network"]:
        print(f"{r['profile']:8} {r['patch']:5d} {r['gflop_per_lesion']:12.3f} {r['lesions_per_s']:9.1f} "
              f"{r['achieved_gflop_s']:8.1f} {r['bare_conv_gflop_s']:17.1f} {r['efficiency']:10.0%}")
    if args.model:
        report["end_to_end"] = e2e = end_to_end(args.model, args.subjects, args.repeats)
        for r in e2e["sessions"]:
            print(f"patient with {r['lesions']} lesions: {r['total_s']:.2f} s ({e2e['models']}-model ensemble "
                  f"{r['network_s']:.2f} s, everything else {r['other_s']:.2f} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
