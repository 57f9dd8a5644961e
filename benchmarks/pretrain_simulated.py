"""Pretraining on simulated lesions: the `quick` frodo network trained on a domain-randomised cohort.

The weights start fine-tuning on a real cohort through `pretrain: {weights: OUT/frodo_quick_simulated.safetensors}`
(with `profile: quick`). Not shipped with prlkit yet: on the first 300-subject cohort the network did
not learn (validation PR-AUC at chance for 10 epochs; benchmarks/README.md, "Pretraining on simulated
lesions"), so there is nothing worth fine-tuning from until the network learns the rim.

Steps (each skipped when its output exists, so an interrupted run continues):
1. `prlkit simulate WORK/cohort --profile randomised --subjects N --seed S` (every subject draws its
   own rim, lesion-size, vein and noise settings; truth labels);
2. `prlkit train WORK/cohort --method frodo_scratch --profile quick --seed 0 --out WORK/model`
   (the fine-tuning stage only, early stopping on the cohort's own validation participants);
3. copy WORK/model/model.safetensors to OUT/frodo_quick_simulated.safetensors and write its
   provenance, OUT/frodo_quick_simulated.json: this command, the generator settings, the cohort's
   lesion counts, the validation scores, the prlkit version and commit, the weights' SHA-256 and the
   frodo settings the weights need.

Usage: PYTHONPATH=src python benchmarks/pretrain_simulated.py --work WORK [--subjects 300] [--seed 2026]
       [--threads 1] --out OUT
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

import prlkit

STRUCTURE = ("base_width", "norm", "se_reduction", "stem_stride")  # what the weights' shapes and layers depend on


def prlkit_command(arguments: list[str], threads: int) -> None:
    """Run `python -m prlkit --threads N ...` with this prlkit; a failure stops the script."""
    subprocess.run([sys.executable, "-m", "prlkit", "--threads", str(threads), *arguments], check=True)


def git_commit() -> str | None:
    """The commit of the prlkit checkout this script imported (None outside git)."""
    result = subprocess.run(["git", "-C", str(Path(prlkit.__file__).parent), "rev-parse", "HEAD"],
                            capture_output=True, text=True)
    return result.stdout.strip() or None


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the cohort and the trained model")
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026, help="generator seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="where the weights and their JSON go")
    args = parser.parse_args()
    cohort, model = args.work / "cohort", args.work / "model"
    if not (cohort / "participants.tsv").exists():
        prlkit_command(["simulate", str(cohort), "--profile", "randomised", "--subjects", str(args.subjects),
                        "--seed", str(args.seed), "--jobs", "1"], args.threads)
    if not (model / "model.safetensors").exists():
        prlkit_command(["train", str(cohort), "--method", "frodo_scratch", "--profile", "quick", "--seed", "0",
                        "--out", str(model), "--no-progress"], args.threads)
    meta = json.loads((model / "model.json").read_text(encoding="utf-8"))
    truth = pd.read_csv(cohort / "sourcedata" / "truth.tsv", sep="\t")
    weights = args.out / "frodo_quick_simulated.safetensors"
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model / "model.safetensors", weights)
    provenance = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "generator": {"command": f"prlkit simulate COHORT --profile randomised --subjects {args.subjects} "
                                 f"--seed {args.seed}", "lesions": len(truth), "rim_pos": int(truth["rim"].sum())},
        "training": {"command": "prlkit train COHORT --method frodo_scratch --profile quick --seed 0",
                     **{k: v for k, v in meta["training"].items() if k != "stages"}},
        "prlkit_version": meta["prlkit_version"],
        "commit": git_commit(),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "frodo": {key: meta["model_config"][key] for key in STRUCTURE},
    }
    weights.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
