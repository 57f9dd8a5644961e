"""Pretraining on simulated lesions: the `quick` frodo network (GroupNorm) trained on a domain-randomised cohort.

Makes the weights prlkit ships (`--out src/prlkit/weights`), which method `frodo_simpretrained`
fine-tunes on the user's cohort (`pretrain: {weights: simulated}`): one file per susceptibility input
(`--susceptibility qsm`, the default, or `phase`: the same cohort's phase images). GroupNorm, not quick's
BatchNorm: at lr 1e-3 the BatchNorm network stayed at chance on this cohort, the GroupNorm one
learned (benchmarks/README.md, "Pretraining on simulated lesions: what stopped the network").

Steps (each skipped when its output exists, so an interrupted run continues):
1. `prlkit simulate WORK/cohort --synth-profile randomised --subjects N --seed S` (`--synth-profile
   randomised_core_balanced`: the same without the simulator's dark-core cue; every subject draws its
   own rim, lesion-size, vein and noise settings; truth labels);
2. `prlkit train WORK/cohort --method frodo_scratch --config WORK/pretrain.yaml --seed 0 --out WORK/model`
   (`TRAINING`: quick with GroupNorm, the fine-tuning stage only, 24 epochs, the epoch with the best
   PR-AUC on the cohort's own validation participants kept; the first weights shipped had 8 epochs,
   the last kept, and the validation PR-AUC was still rising: benchmarks/README.md). Phase:
   `WORK/pretrain_phase.yaml` and `WORK/model_phase`, with `susceptibility: phase` and the sign the
   simulator wrote (`phase_sign`, known, so not detected);
3. copy the model's network (without the symmetry average around it) to OUT/frodo_quick_simulated.safetensors (phase:
   frodo_quick_simulated_phase.safetensors; `randomised_core_balanced`: frodo_quick_simulated_core_balanced
   and frodo_quick_simulated_core_balanced_phase, `pretrain.weights: simulated_core_balanced`, the second
   start of method frodo_simpretrained_pair) and write its provenance JSON beside it: this command,
   the generator settings, the cohort's lesion counts, the validation scores, the prlkit version and
   commit, the weights' SHA-256, the susceptibility input and the frodo settings the weights need.

With `--anatomy T1W` (the shipped `simulated_anatomy` weights): step 1 draws the participants on that real
skull-stripped brain (`prlkit simulate --anatomy`), and step 2 is method `frodo_simpretrained` itself
(`prlkit train WORK/cohort --method frodo_simpretrained --seed 0`): the shipped `simulated` weights fine-tuned
on them with the variant's recipe, a second pretraining stage that shows the network real cortex, sulci and
ventricles. The shipped file used the ICBM 2009a symmetric MNI152 template that nilearn packages, a brain in none of
prlkit's test cohorts (`pip download nilearn==0.14.1 --no-deps`, then unzip
`nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz`; its SHA-256 is in the JSON).

Usage: PYTHONPATH=src python benchmarks/pretrain_simulated.py --work WORK [--subjects 300] [--seed 2026]
       [--synth-profile randomised|randomised_core_balanced] [--anatomy T1W]
       [--susceptibility qsm|phase] [--threads 1] --out OUT
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from safetensors.torch import load_file, save_file

import prlkit
from prlkit.synth.phase import DEFAULT_PHASE_SIGN
from prlkit.weights import PRETRAINING_PROFILES, SHIPPED_WEIGHTS, SIMULATED_QUICK

STRUCTURE = ("base_width", "norm", "se_reduction", "stem_stride")  # what the weights' shapes and layers depend on
# average_fraction 0: `quick` later gained a weight average over its last epochs, which needs keep: last;
# the shipped weights were trained without it (the best validation epoch kept)
TRAINING = {"profile": "quick", "frodo": {"norm": "group"},
            "finetune": {"max_epochs": 24, "patience": 24, "keep": "best", "average_fraction": 0.0}}
# `--anatomy`: method frodo_simpretrained's own recipe, its start pinned to the `simulated` weights so that the
# stage stays reproducible whatever start the method defaults to
ANATOMY_STAGE = {"profile": "quick", "methods": {"frodo_simpretrained": {"pretrain": {"weights": "simulated"}}}}


def prlkit_command(arguments: list[str], threads: int) -> None:
    """Run `python -m prlkit --threads N ...` with this prlkit; a failure stops the script."""
    subprocess.run([sys.executable, "-m", "prlkit", "--threads", str(threads), *arguments], check=True)


def export_network(model_weights: Path, out: Path) -> None:
    """The trained network's weights without the symmetry average's `net.` prefix (quick's model folders
    save the network inside it), so the shipped file holds the plain network `FrodoNet` loads."""
    state = load_file(str(model_weights))
    if all(key.startswith("net.") for key in state):
        state = {key.removeprefix("net."): value for key, value in state.items()}
    save_file(state, str(out))


def git_commit() -> str | None:
    """The commit of the prlkit checkout this script imported (None outside git)."""
    result = subprocess.run(["git", "-C", str(Path(prlkit.__file__).parent), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or None


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the cohort and the trained model")
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026, help="generator seed")
    parser.add_argument("--synth-profile", default="randomised", choices=sorted(set(PRETRAINING_PROFILES.values())),
                        help="generator profile: randomised (default; the shipped `simulated` weights) or "
                             "randomised_core_balanced (Rim+ and plain Rim- cores drawn alike; the shipped "
                             "`simulated_core_balanced` weights, benchmarks/README.md)")
    parser.add_argument("--anatomy", type=Path, metavar="T1W",
                        help="draw the participants on this skull-stripped 1 mm T1w and fine-tune the shipped "
                             "`simulated` weights on them (method frodo_simpretrained): the `simulated_anatomy` "
                             "weights (module docstring)")
    parser.add_argument("--susceptibility", choices=sorted(SIMULATED_QUICK), default="qsm",
                        help="the input the network learns from (default qsm)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="where the weights and their JSON go")
    args = parser.parse_args()
    if args.anatomy and args.synth_profile != "randomised":
        parser.error("--anatomy makes the `simulated_anatomy` weights: use it with --synth-profile randomised")
    suffix = "" if args.susceptibility == "qsm" else f"_{args.susceptibility}"
    cohort, model = args.work / "cohort", args.work / f"model{suffix}"
    method, training = ("frodo_simpretrained", ANATOMY_STAGE) if args.anatomy else ("frodo_scratch", TRAINING)
    if args.susceptibility != "qsm":
        training = {**training, "susceptibility": args.susceptibility, "phase_sign": DEFAULT_PHASE_SIGN}
    anatomy = ["--anatomy", str(args.anatomy)] if args.anatomy else []
    if not (cohort / "participants.tsv").exists():
        prlkit_command(["simulate", str(cohort), "--synth-profile", args.synth_profile, *anatomy,
                        "--subjects", str(args.subjects), "--seed", str(args.seed), "--jobs", "1"], args.threads)
    if not (model / "model.safetensors").exists():
        settings = args.work / f"pretrain{suffix}.yaml"
        settings.write_text(yaml.safe_dump(training), encoding="utf-8")
        prlkit_command(["train", str(cohort), "--method", method, "--config", str(settings), "--seed", "0",
                        "--out", str(model), "--no-progress"], args.threads)
    meta = json.loads((model / "model.json").read_text(encoding="utf-8"))
    truth = pd.read_csv(cohort / "sourcedata" / "truth.tsv", sep="\t")
    by_profile = {profile: name for name, profile in PRETRAINING_PROFILES.items() if name != "simulated_anatomy"}
    shipped_name = "simulated_anatomy" if args.anatomy else by_profile[args.synth_profile]
    weights = args.out / SHIPPED_WEIGHTS[shipped_name][args.susceptibility].name
    args.out.mkdir(parents=True, exist_ok=True)
    export_network(model / "model.safetensors", weights)
    provenance = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "generator": {"command": shlex.join(["prlkit", "simulate", "COHORT", "--synth-profile", args.synth_profile,
                                             *(["--anatomy", "T1W"] if args.anatomy else []),
                                             "--subjects", str(args.subjects), "--seed", str(args.seed)]),
                      "lesions": len(truth), "rim_pos": int(truth["rim"].sum()),
                      **({"anatomy": {"file": args.anatomy.name,
                                      "sha256": hashlib.sha256(args.anatomy.read_bytes()).hexdigest()}}
                         if args.anatomy else {})},
        "training": {"command": f"prlkit train COHORT --method {method} --config pretrain{suffix}.yaml --seed 0",
                     "config": training, **{k: v for k, v in meta["training"].items() if k != "stages"}},
        "prlkit_version": meta["prlkit_version"],
        "commit": git_commit(),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "susceptibility": args.susceptibility,
        "frodo": {key: meta["model_config"][key] for key in STRUCTURE},
    }
    weights.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
