"""CPU inference: network throughput against a bare-conv3d bound, and end-to-end `prlkit predict` per patient.

Part 1, per width profile (`quick`, `paper`) at its patch size: forward GFLOP per lesion
(torch's FlopCounterMode), lesions/s in eval mode of the network as trained ("before": contiguous,
what `prlkit predict` ran until the speed work) and of `prlkit.models.frodo.inference_model`
("after": BatchNorm folded, channels_last_3d), each at batch 8 and 32, and the bound: every Conv3d
of the network re-run as a bare `F.conv3d` on tensors of the same shapes, all in one timed step
like the network itself; the network's efficiency is (bare convolutions' time) / (network time).
Part 2 (with ``--model``, a `prlkit cv` or `prlkit train` folder): `predict_sessions` on freshly
simulated participants, timed per patient, split into the network (the ensemble on the
session's patches, timed separately) and everything else (reading and checking NIfTI,
lesions, patches, writing outputs; timed with the network replaced by zeros); "before" emulates
the earlier code (untransformed networks, every session read twice).

Run: ``PYTHONPATH=src python benchmarks/cpu_inference.py [--model prlkit-demo/cv] [--json out.json]``.
Variants are timed interleaved (round robin), best of ``--repeats``, so that the machine's other
load hits them alike; the ratios are what to trust on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prlkit.config import get_profile
from prlkit.data.bids import SessionFiles, discover_cohort
from prlkit.data.patches import session_patches
from prlkit.data.session import load_session
from prlkit.models.frodo import FrodoNet, count_flops, inference_model
from prlkit.predict import Ensemble, load_ensemble, predict_sessions
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile as synth_profile

BATCHES = (8, 32)


def interleaved_best(steps: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall-clock seconds of each step over `repeats` round-robin rounds, after one warm-up call each."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


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


def bare_convs(calls: list[tuple[torch.nn.Conv3d, tuple[int, ...]]]) -> Callable[[], None]:
    """One step that runs each of the network's convolutions as a bare F.conv3d (channels_last_3d, same shapes)."""
    tensors = [(torch.randn(shape).contiguous(memory_format=torch.channels_last_3d),
                conv.weight.detach().contiguous(memory_format=torch.channels_last_3d), conv) for conv, shape in calls]

    def step() -> None:
        with torch.no_grad():
            for x, weight, conv in tensors:
                F.conv3d(x, weight, None, conv.stride, conv.padding)

    return step


def trained_like(profile: str) -> FrodoNet:
    """The profile's network in eval mode with BatchNorm running statistics as after training (not 0/1)."""
    net = FrodoNet(get_profile(profile).frodo, seed=0)
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.normal_(0.0, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
    return net.eval()


def network_rows(profile: str, repeats: int) -> list[dict]:
    """Per batch size: throughput, FLOPs and bare-conv efficiency of the profile's network, before and after
    `inference_model`, timed interleaved."""
    size = get_profile(profile).patches.size
    before = trained_like(profile)
    after = inference_model(before)
    flops = count_flops(before, (1, 2, size, size, size))
    rows = []
    for batch in BATCHES:
        x = torch.randn(batch, 2, size, size, size)
        bare = bare_convs(conv_calls(after, x.contiguous(memory_format=torch.channels_last_3d)))
        with torch.no_grad():
            # x=x: bind this batch's input (the lambdas are only called within this iteration)
            seconds = interleaved_best({"before": lambda x=x: before(x), "after": lambda x=x: after(x), "bare": bare},
                                       repeats)
        bound = seconds["bare"]
        rows.append({"profile": profile, "patch": size, "batch": batch, "gflop_per_lesion": flops / 1e9,
                     "lesions_per_s_before": batch / seconds["before"], "lesions_per_s": batch / seconds["after"],
                     "speedup": seconds["before"] / seconds["after"],
                     "achieved_gflop_s": flops * batch / seconds["after"] / 1e9,
                     "bare_conv_gflop_s": flops * batch / bound / 1e9,
                     "efficiency_before": bound / seconds["before"], "efficiency": bound / seconds["after"]})
    return rows


class WithoutNetwork(Ensemble):
    """The same ensemble with a free network: times everything but the network."""

    def probabilities(self, patches: np.ndarray, device: torch.device, features=None) -> np.ndarray:
        return np.zeros(len(patches))


def session_times(files: SessionFiles, ensembles: tuple[Ensemble, Ensemble, Ensemble], out: Path,
                  device: torch.device, repeats: int) -> dict:
    """One session's best times of predict_sessions (before / after / without the network), the network alone (before /
    after) and reading the session; `ensembles` is (before, after, without network)."""
    plain, ensemble, no_network = ensembles

    def run(which: Ensemble) -> None:
        predict_sessions([files], which, out, device, progress=False)

    def before() -> None:
        load_session(files, ensemble.config.lesions)
        run(plain)

    session = load_session(files, ensemble.config.lesions)
    included = session.lesions[session.lesions["excluded"] == ""]
    patches = session_patches(session, included, ensemble.config.patches)
    t = interleaved_best({"before": before, "total": lambda: run(ensemble), "other": lambda: run(no_network),
                          "network": lambda: ensemble.probabilities(patches, device),
                          "network_before": lambda: plain.probabilities(patches, device),
                          "read": lambda: load_session(files, ensemble.config.lesions)}, repeats)
    return {"lesions": len(included), "before_s": t["before"], "total_s": t["total"], "network_s": t["network"],
            "network_before_s": t["network_before"], "other_s": t["other"], "read_s": t["read"]}


def end_to_end(model: Path, subjects: int, repeats: int) -> dict:
    """Per-patient wall time of predict_sessions with the model's ensemble (before / after), and its network share."""
    device = torch.device("cpu")
    ensemble, plain = load_ensemble(model), load_ensemble(model, fast=False)
    no_network = WithoutNetwork(ensemble.models)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_cohort(data, subjects, 4242, synth_profile("default"), jobs=1, preview=False, progress=False)
        sessions = discover_cohort(data).sessions
        rows = [session_times(files, (plain, ensemble, no_network), Path(tmp) / "out", device, repeats)
                for files in sessions]
    return {"models": len(ensemble.models), "sessions": rows,
            **{f"mean_{key}": float(np.mean([r[key] for r in rows]))
               for key in ("before_s", "total_s", "network_s", "network_before_s", "other_s", "read_s", "lesions")}}


def machine_info(threads: int) -> dict:
    """CPU model, cores, torch threads and version, date and the load average now."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": os.getloadavg()[0]}


def print_network_table(rows: list[dict]) -> None:
    print(f"{'profile':8} {'patch':>5} {'batch':>5} {'GFLOP/lesion':>12} {'lesions/s before':>16} {'after':>7} "
          f"{'speedup':>7} {'GFLOP/s':>8} {'bare conv GFLOP/s':>17} {'efficiency before/after':>23}")
    for r in rows:
        print(f"{r['profile']:8} {r['patch']:5d} {r['batch']:5d} {r['gflop_per_lesion']:12.3f} "
              f"{r['lesions_per_s_before']:16.1f} {r['lesions_per_s']:7.1f} {r['speedup']:7.2f} "
              f"{r['achieved_gflop_s']:8.1f} {r['bare_conv_gflop_s']:17.1f} "
              f"{r['efficiency_before']:11.0%} / {r['efficiency']:.0%}")


def print_end_to_end(e2e: dict) -> None:
    for r in e2e["sessions"]:
        print(f"patient with {r['lesions']} lesions: before {r['before_s']:.2f} s, after {r['total_s']:.2f} s "
              f"({e2e['models']}-model ensemble {r['network_before_s']:.2f} -> {r['network_s']:.2f} s, everything "
              f"else {r['other_s']:.2f} s, of which one read of the session {r['read_s']:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a prlkit cv or train folder for the end-to-end part")
    parser.add_argument("--subjects", type=int, default=3, help="simulated patients for the end-to-end part")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"machine": machine_info(args.threads),
              "network": [row for profile in ("quick", "paper") for row in network_rows(profile, args.repeats)]}
    print(report["machine"])
    print_network_table(report["network"])
    if args.model:
        report["end_to_end"] = end_to_end(args.model, args.subjects, args.repeats)
        print_end_to_end(report["end_to_end"])
    report["machine"]["load_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
