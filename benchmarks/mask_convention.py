"""A copy of a BIDS cohort whose lesion masks follow another segmentation convention: every lesion grown or
shrunk by whole voxels, labels and rim table unchanged.

prlkit's simulator draws the rim 1–2 voxels inside the lesion mask plus one voxel outside it. Real masks
come from many tools and raters: some are generous (the rim well inside the mask), some stop at the
FLAIR edge (the rim partly outside it). Training and testing a method on copies of the same cohorts with
grown or shrunk masks measures whether it depends on the simulator's convention (benchmarks/README.md,
*Lesion masks drawn another way*).

Growing assigns background voxels within `--grow` voxels of a lesion to the nearest lesion (lesions never
merge or overwrite each other); shrinking removes a lesion's voxels within `-grow` voxels of its edge,
and a lesion that would vanish keeps its mask (counted in the printed summary). The images are copied
unchanged; the input cohort is only read.

Growing makes more lesions pass `lesions.min_voxels` and shrinking fewer, so each convention scores its own
set of lesions; `--compare` rescores `benchmarks/transfer.py` runs of several conventions on the lesions that
every method scored in every one of them.

Usage: PYTHONPATH=src python benchmarks/mask_convention.py --cohort IN --out OUT --grow N   (N < 0 shrinks)
       PYTHONPATH=src python benchmarks/mask_convention.py --compare RUN_DIR=TEST_COHORT ... --methods a,b
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from prlkit.config import get_profile
from prlkit.data.bids import discover_cohort
from transfer import KEYS, TRAINING_FREE, expert_lesions, markdown_table, read_predictions, scored, transfer_metrics


def grow_lesions(labels: np.ndarray, voxels: int) -> np.ndarray:
    """Background voxels within `voxels` (Euclidean, in voxels) of a lesion join their nearest lesion."""
    distance, nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    grown = labels[tuple(nearest)]
    return np.where((labels == 0) & (distance <= voxels), grown, labels)


def shrink_lesions(labels: np.ndarray, voxels: int) -> tuple[np.ndarray, int]:
    """Each lesion without the voxels within `voxels` of its edge (background or another lesion); returns the
    map and how many lesions kept their mask because shrinking would have removed them."""
    shrunk, kept = labels.copy(), 0
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        padded = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        lesion = labels[padded] == index
        inner = ndimage.distance_transform_edt(np.pad(lesion, 1))[1:-1, 1:-1, 1:-1] > voxels
        if not inner.any():
            kept += 1
            continue
        shrunk[padded][lesion & ~inner] = 0
    return shrunk, kept


def convert_cohort(cohort: Path, out: Path, grow: int) -> dict[str, int]:
    """Copy `cohort` to `out` with every lesion map grown (`grow` > 0) or shrunk (< 0) by `|grow|` voxels."""
    if out.exists():
        raise SystemExit(f"{out}: exists; give a new folder")
    sessions = discover_cohort(cohort).sessions
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cohort, staging)
    lesions, kept = 0, 0
    for session in sessions:
        path = staging / Path(session.lesions).relative_to(cohort)
        image = nib.load(path)
        labels = np.asarray(image.dataobj).astype(np.int32)
        if grow > 0:
            changed = grow_lesions(labels, grow)
        else:
            changed, unshrunk = shrink_lesions(labels, -grow)
            kept += unshrunk
        lesions += len(np.unique(labels)) - 1
        nib.save(nib.Nifti1Image(changed.astype(image.get_data_dtype()), image.affine, image.header), path)
    staging.rename(out)
    return {"participants": len(sessions), "lesions": lesions, "kept_unshrunk": kept}


def common_lesion_metrics(runs: dict[Path, Path], methods: list[str], profile: str = "quick") -> list[dict]:
    """ROC/PR-AUC of every method (and the training-free contrast) in every transfer run (run folder -> its test
    cohort), on the lesions (KEYS) that all of them scored: one row per run and method, as transfer.py's."""
    tables = {}
    for run, cohort in runs.items():
        labels = expert_lesions(cohort, get_profile(profile).lesions)
        table = scored(labels, TRAINING_FREE).set_index(KEYS)[["rim", "volume_mm3", TRAINING_FREE]]
        for method in methods:
            predicted = read_predictions(run / method / f"pred-{cohort.name}").set_index(KEYS)["probability"]
            table = table.join(predicted.dropna().rename(method), how="inner")
        tables[run] = table
    common = set.intersection(*(set(table.index) for table in tables.values()))
    rows = []
    for run, table in tables.items():
        shared = table.loc[sorted(common)]
        for method in [*methods, TRAINING_FREE]:
            rows.append({"test": f"{run.name}: {runs[run].name}", "method": method,
                         **transfer_metrics(shared["rim"], shared[method], shared["volume_mm3"])})
    return rows



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, help="BIDS cohort to copy (read only)")
    parser.add_argument("--out", type=Path, help="new folder for the copy")
    parser.add_argument("--grow", type=int, help="voxels to grow every lesion by (negative: shrink)")
    parser.add_argument("--compare", nargs="+", metavar="RUN_DIR=TEST_COHORT",
                        help="transfer.py run folders, each with the test cohort it predicted")
    parser.add_argument("--methods", default="aprl,frodo_simpretrained", help="methods to compare (--compare)")
    args = parser.parse_args()
    if args.compare:
        runs = {Path(run): Path(cohort) for run, cohort in (spec.split("=", 1) for spec in args.compare)}
        print(markdown_table(common_lesion_metrics(runs, [m.strip() for m in args.methods.split(",") if m.strip()])))
        return
    if args.cohort is None or args.out is None or args.grow is None:
        parser.error("--cohort, --out and --grow are required (or --compare)")
    if not args.cohort.is_dir():
        parser.error(f"{args.cohort}: no such cohort folder")
    if args.grow == 0:
        raise SystemExit("--grow 0 would copy the cohort unchanged")
    summary = convert_cohort(args.cohort.resolve(), args.out.resolve(), args.grow)
    print(f"{args.out}: {summary['participants']} participants, {summary['lesions']} lesions "
          f"{'grown' if args.grow > 0 else 'shrunk'} by {abs(args.grow)} voxel(s)"
          + (f"; {summary['kept_unshrunk']} too small to shrink kept their mask" if args.grow < 0 else ""))


if __name__ == "__main__":
    main()
