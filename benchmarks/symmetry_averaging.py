"""Test-time symmetry averaging: does averaging a trained network's logits over mirror images help?

Training already augments with the 48 symmetries of the patch cube (`prlkit.train.augment`), so a
trained network should score a mirrored lesion like the original; where it does not, the average
over symmetries removes that part of its noise. Per model folder and test cohort: the scored lesions'
(labelled, with a patch) ROC-AUC and PR-AUC with logits averaged over
- `none`: the patch as it is (what `prlkit predict` does today),
- `flips`: the 8 mirror images along the three axes (the dipole field is symmetric under each flip),
- `cube`: all 48 cube symmetries (axis permutations too, as in training),
and the Spearman correlation of the score with lesion volume among Rim- lesions. Uncalibrated
scores (calibration is increasing, so the AUCs are the same).

Usage: PYTHONPATH=src python benchmarks/symmetry_averaging.py --models NAME=MODEL [...] --test COHORT [...]
       [--cache-dir CACHE] [--threads 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from prlkit.config import TEST_TIME_SYMMETRIES
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import load_trained_model
from prlkit.models.frodo import IMAGE_CHANNELS, SymmetryAveraged, with_test_time_symmetries
from prlkit.train.stages import predict_logits


def averaged_logits(net: torch.nn.Module, x: torch.Tensor, symmetries: str) -> np.ndarray:
    """Logits of `net` over the (N, C, S, S, S) patches, averaged over the named symmetry set."""
    with torch.no_grad():
        return predict_logits(with_test_time_symmetries(net, symmetries), x).numpy()


def score_cohorts(name: str, config, scorers: dict, tests: list[Path], cache_dir: Path | None) -> list[dict]:
    """Per test cohort: `transfer_metrics` of each scorer's logits (label -> function of the patch tensor) on the
    scored lesions, one markdown table row printed per cohort; the rows as dicts."""
    from transfer import transfer_metrics  # benchmarks/ sibling: the same metrics as the transfer table

    rows = []
    for test in tests:
        patch_set = build_patch_set(discover_cohort(test), config, cache_dir, progress=False)
        table = patch_set.labelled()
        split = lesion_split(patch_set, table.index.to_numpy(), IMAGE_CHANNELS)
        cells, row = [], {"model": name, "test": test.name}
        for label, scorer in scorers.items():
            metrics = transfer_metrics(split.y.numpy(), scorer(split.x.float()), table["volume_mm3"].to_numpy())
            row[label] = metrics
            cells.append(f"{metrics['roc_auc']:.3f} / {metrics['pr_auc']:.3f} "
                         f"({metrics['spearman_volume_rim_neg']:.2f})")
        rows.append(row)
        print(f"| {name} | {test.name} | {metrics['n_lesions']} ({metrics['n_rim_pos']}) | " + " | ".join(cells)
              + " |", flush=True)
    return rows


def write_result(out: Path, rows: list[dict], started: float) -> None:
    """The rows, the command that made them, the load and the wall time, as JSON."""
    out.write_text(json.dumps({"command": shlex.join([sys.executable, *sys.argv]), "rows": rows,
                               "load": os.getloadavg(), "wall_s": round(time.perf_counter() - started, 1)},
                              indent=2) + "\n", encoding="utf-8")


def named_model(spec: str) -> tuple[str, Path]:
    """`NAME=MODEL` of the command line as (name, model folder); anything else is a usage error."""
    name, _, folder = spec.partition("=")
    if not name or not folder or not (Path(folder) / "model.json").is_file():
        raise argparse.ArgumentTypeError(f"{spec!r}: expected NAME=MODEL_FOLDER with a model.json in the folder")
    return name, Path(folder)


def model_parser(description: str) -> argparse.ArgumentParser:
    """The options of the scripts that rescore saved models: models, test cohorts, cache, threads, JSON out."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME=MODEL", type=named_model)
    parser.add_argument("--test", type=Path, nargs="+", required=True)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    return parser


def saved_network(folder: Path):
    """A saved model and its network without the test-time average it may have been saved with."""
    model = load_trained_model(folder)
    net = model.module.eval()
    return model, net.net if isinstance(net, SymmetryAveraged) else net


def main() -> None:
    """Command line: see the module docstring."""
    args = model_parser(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(args.threads)
    started, rows = time.perf_counter(), []
    print("| model | test cohort | lesions (Rim+) | none | flips (8) | cube (48) |\n|---|---|---|---|---|---|")
    for name, folder in args.models:
        model, net = saved_network(folder)
        scorers = {set_name: functools.partial(averaged_logits, net, symmetries=set_name)
                   for set_name in TEST_TIME_SYMMETRIES}
        rows += score_cohorts(name, model.config, scorers, args.test, args.cache_dir)
    if args.out:
        write_result(args.out, rows, started)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
