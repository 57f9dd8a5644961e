"""A copy of a BIDS cohort on another voxel grid: every image resampled to `--voxel-mm` (linear for images,
nearest neighbour for lesion maps), rim tables unchanged, phase images left out (linear interpolation would
mix wrapped phase).

prlkit's simulator writes 1 mm isotropic images, and prlkit cuts its patches in voxels: on a 0.65 mm
acquisition a lesion and its rim are 1.5 times as many voxels across, and a 24-voxel patch covers 16 mm
instead of 24. Training and testing on resampled copies of the same cohorts measures how much a method
(and the shipped pretrained weights, drawn at 1 mm) depends on the voxel size (benchmarks/README.md,
*Lesion masks drawn another way, and another voxel size*). Upsampling adds no detail a finer acquisition
would have: it changes the geometry only. The input cohort is only read.

Usage: PYTHONPATH=src python benchmarks/resample_cohort.py --cohort IN --out OUT --voxel-mm 0.65
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_to_output


def resample_image(path: Path, voxel_mm: float, labels: bool) -> None:
    """Rewrite the NIfTI at `path` on a `voxel_mm` isotropic grid covering the same field of view."""
    image = nib.load(path)
    resampled = resample_to_output(image, voxel_sizes=(voxel_mm,) * 3, order=0 if labels else 1)
    data = np.asarray(resampled.dataobj)
    data = data.astype(image.get_data_dtype()) if labels else data.astype(np.float32)
    nib.save(nib.Nifti1Image(data, resampled.affine), path)


def resample_cohort(cohort: Path, out: Path, voxel_mm: float) -> int:
    """Copy `cohort` to `out` with every NIfTI on a `voxel_mm` grid; returns the number of images resampled."""
    if out.exists():
        raise SystemExit(f"{out}: exists; give a new folder")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cohort, staging, ignore=shutil.ignore_patterns("sourcedata", "*part-phase*"))
    images = sorted(path for path in staging.rglob("*.nii*") if path.name.endswith((".nii", ".nii.gz")))
    for path in images:
        resample_image(path, voxel_mm, labels=path.name.endswith(("_dseg.nii.gz", "_dseg.nii", "_mask.nii.gz")))
    if (cohort / "sourcedata" / "truth.tsv").exists():  # per-lesion generating parameters, keyed by label
        (staging / "sourcedata").mkdir()
        shutil.copy2(cohort / "sourcedata" / "truth.tsv", staging / "sourcedata" / "truth.tsv")
    staging.rename(out)
    return len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="BIDS cohort to copy (read only)")
    parser.add_argument("--out", type=Path, required=True, help="new folder for the copy")
    parser.add_argument("--voxel-mm", type=float, required=True, help="isotropic voxel size of the copy")
    args = parser.parse_args()
    if not args.cohort.is_dir():
        parser.error(f"{args.cohort}: no such cohort folder")
    if args.voxel_mm <= 0:
        raise SystemExit(f"--voxel-mm must be > 0, not {args.voxel_mm}")
    count = resample_cohort(args.cohort.resolve(), args.out.resolve(), args.voxel_mm)
    print(f"{args.out}: {count} images resampled to {args.voxel_mm} mm")


if __name__ == "__main__":
    main()
