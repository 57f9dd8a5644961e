"""All of prlkit's speed benchmarks in one run: one table on stdout, everything in a JSON file.

CPU (default): patch extraction uncached/cached on a 30-subject synthetic cohort (simulated when
absent), the frodo network's CPU inference before/after `inference_model` against the bare-conv3d
bound, and with ``--model`` end-to-end `prlkit predict` per patient (see cpu_inference.py).
``--gpu``: GPU training (gpu_training.py) of the `paper` profile: the optimisation ladder of frodo's
training step (fp32, +bf16 autocast, +channels_last_3d, +torch.compile, patch cache on the host
instead of the GPU), ResNet-18's throughput in the same run, and a timed 5-fold `prlkit cv` of
frodo (SSL pretraining included) on an 88-subject synthetic cohort. ``--gpu-dry-run`` runs the same
training-step code on the CPU with tiny sizes (a check of the code, not a measurement).

Run: ``PYTHONPATH=src python benchmarks/run.py [--model prlkit-demo/cv] [--gpu] [--json speed.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu_inference
import gpu_training
import patch_extraction
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile as synth_profile

TINY_FRODO = {"base_width": 2, "se_reduction": 4}


def cpu_rows(args: argparse.Namespace) -> tuple[dict, list[tuple[str, str]]]:
    """Run the CPU benchmarks; the JSON part and the table rows."""
    report: dict = {"patch_extraction": patch_extraction.measure(args.cohort, args.subjects)}
    p = report["patch_extraction"]
    rows = [(f"patch extraction, {p['sessions']} sessions, {p['patches']} patches {p['patch']}^3, uncached",
             f"{p['uncached_s']:.2f} s ({p['uncached_s'] / p['sessions']:.3f} s/session)"),
            ("patch extraction, cached", f"{p['cached_s']:.3f} s")]
    report["network"] = [r for profile in ("quick", "paper") for r in cpu_inference.network_rows(profile, args.repeats)]
    for r in report["network"]:
        rows.append((f"{r['profile']} network {r['patch']}^3, batch {r['batch']}: lesions/s before -> after",
                     f"{r['lesions_per_s_before']:.1f} -> {r['lesions_per_s']:.1f} (x{r['speedup']:.2f}); "
                     f"{r['gflop_per_lesion']:.3f} GFLOP/lesion, {r['achieved_gflop_s']:.1f} GFLOP/s, "
                     f"bare-conv efficiency {r['efficiency_before']:.0%} -> {r['efficiency']:.0%}"))
    if args.model:
        report["end_to_end"] = e2e = cpu_inference.end_to_end(args.model, args.patients, args.repeats)
        rows += [(f"predict per patient ({e2e['models']}-model ensemble, {e2e['mean_lesions']:.0f} lesions), "
                  "before -> after", f"{e2e['mean_before_s']:.2f} -> {e2e['mean_total_s']:.2f} s"),
                 ("  of which the network, before -> after",
                  f"{e2e['mean_network_before_s']:.2f} -> {e2e['mean_network_s']:.2f} s"),
                 ("  of which everything else (one read of the session)",
                  f"{e2e['mean_other_s']:.2f} s ({e2e['mean_read_s']:.2f} s)")]
    return report, rows


def gpu_rows(args: argparse.Namespace, device: torch.device, dry_run: bool) -> tuple[dict, list[tuple[str, str]]]:
    """Run the GPU training benchmarks (tiny sizes on the CPU for a dry run); the JSON part and the table rows."""
    if dry_run:
        sizes = {"size": 16, "batch": 4, "steps": 2, "warmup": 1, "cache_lesions": 8}
        frodo, resnet = {**sizes, "model_config": TINY_FRODO}, sizes
        ladder = {k: dataclasses.replace(v, compile=False)  # compiling takes a minute on CPU
                  for k, v in gpu_training.LADDER.items() if k != "+torch.compile"}
    else:
        frodo = {**gpu_training.paper_sizes("frodo"), "batch": args.batch, "steps": args.steps}
        resnet = {**gpu_training.paper_sizes("resnet18"), "batch": args.batch, "steps": args.steps}
        ladder = gpu_training.LADDER
    report: dict = {"ladder": gpu_training.optimisation_ladder("frodo", device, ladder, **frodo)}
    best = max(report["ladder"], key=lambda r: r["samples_per_s"])
    chosen = gpu_training.Variant(best["bf16"], best["channels_last"], best["compile"], best["cache_on_device"])
    report["resnet18"] = gpu_training.train_throughput("resnet18", device, chosen, **resnet)
    rows = []
    for r in report["ladder"]:
        peak = f", {r['fraction_of_bf16_peak']:.1%} of bf16 peak" if r["fraction_of_bf16_peak"] else ""
        rows.append((f"frodo training step, {r['variant']}", f"{r['samples_per_s']:.0f} samples/s, "
                     f"{r['tflop_s']:.2f} TFLOP/s{peak} (x{r['vs_previous']:.2f} vs previous, "
                     f"x{r['vs_fp32']:.2f} vs fp32)"))
    rows.append(("ResNet-18 / frodo samples/s (best setting)",
                 f"{report['resnet18']['samples_per_s']:.0f} / {best['samples_per_s']:.0f} = "
                 f"{report['resnet18']['samples_per_s'] / best['samples_per_s']:.2f}"))
    if not dry_run and not args.skip_cv:
        with tempfile.TemporaryDirectory() as tmp:
            cohort = Path(tmp) / "cohort"
            write_cohort(cohort, 88, 0, synth_profile("default"), jobs=os.cpu_count() or 2, progress=False)
            report["cv"] = cv = gpu_training.timed_cv(cohort, Path(tmp) / "cv", Path(tmp) / "cache")
        rows.append(("paper 5-fold CV of frodo, 88 subjects", f"{cv['cv_seconds'] / 60:.1f} min; per fold "
                     + ", ".join(f"{s:.0f}" for s in cv["fold_seconds"]) + " s"))
    return report, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="the GPU training benchmark (needs CUDA)")
    parser.add_argument("--gpu-dry-run", action="store_true", help="the GPU benchmark's code on the CPU, tiny sizes")
    parser.add_argument("--model", type=Path, help="a prlkit cv or train folder: adds predict per patient")
    parser.add_argument("--cohort", type=Path, default=Path(tempfile.gettempdir()) / "prlkit-bench-cohort-30",
                        help="cohort for patch extraction (simulated when absent)")
    parser.add_argument("--subjects", type=int, default=30, help="subjects when simulating --cohort")
    parser.add_argument("--patients", type=int, default=3, help="simulated patients for predict per patient")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=64, help="GPU training batch")
    parser.add_argument("--steps", type=int, default=30, help="timed GPU training steps per variant")
    parser.add_argument("--skip-cv", action="store_true", help="--gpu without the timed 5-fold CV")
    parser.add_argument("--json", type=Path, default=Path("speed.json"))
    args = parser.parse_args()
    if args.gpu and not torch.cuda.is_available():
        sys.exit(f"benchmarks/run.py --gpu: no CUDA device (torch {torch.__version__}); "
                 "run it on a GPU machine, or use --gpu-dry-run to check the code on the CPU")
    torch.set_num_threads(args.threads)
    report: dict = {"machine": cpu_inference.machine_info(args.threads), "command": " ".join(sys.argv)}
    if args.gpu or args.gpu_dry_run:
        device = torch.device("cuda" if args.gpu else "cpu")
        if args.gpu:
            report["machine"]["gpu"] = torch.cuda.get_device_name(device)
        report["gpu_training"], rows = gpu_rows(args, device, dry_run=not args.gpu)
    else:
        report["cpu"], rows = cpu_rows(args)
    report["machine"]["load_after"] = os.getloadavg()[0]
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, {m['date']}, "
          f"load {m['load_before']:.1f} -> {m['load_after']:.1f}" + (f", {m['gpu']}" if "gpu" in m else ""))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:{width}}  {value}")
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
