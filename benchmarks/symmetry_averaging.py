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


def main() -> None:
    """Command line: see the module docstring."""
    from transfer import transfer_metrics  # benchmarks/ sibling: the same metrics as the transfer table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME=MODEL")
    parser.add_argument("--test", type=Path, nargs="+", required=True)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, rows = time.perf_counter(), []
    print("| model | test cohort | lesions (Rim+) | none | flips (8) | cube (48) |\n|---|---|---|---|---|---|")
    for spec in args.models:
        name, folder = spec.split("=", 1)
        model = load_trained_model(Path(folder))
        net = model.module.eval()
        net = net.net if isinstance(net, SymmetryAveraged) else net  # a model saved with averaging: its network
        for test in args.test:
            patch_set = build_patch_set(discover_cohort(test), model.config, args.cache_dir, progress=False)
            rows_table = patch_set.labelled()
            split = lesion_split(patch_set, rows_table.index.to_numpy(), IMAGE_CHANNELS)
            cells, row = [], {"model": name, "test": test.name}
            for set_name in TEST_TIME_SYMMETRIES:
                scores = averaged_logits(net, split.x.float(), set_name)
                metrics = transfer_metrics(split.y.numpy(), scores, rows_table["volume_mm3"].to_numpy())
                row[set_name] = metrics
                cells.append(f"{metrics['roc_auc']:.3f} / {metrics['pr_auc']:.3f} "
                             f"({metrics['spearman_volume_rim_neg']:.2f})")
            rows.append(row)
            print(f"| {name} | {test.name} | {metrics['n_lesions']} ({metrics['n_rim_pos']}) | " + " | ".join(cells)
                  + " |", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"command": shlex.join([sys.executable, *sys.argv]), "rows": rows,
                                        "load": os.getloadavg(), "wall_s": round(time.perf_counter() - started, 1)},
                                       indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
