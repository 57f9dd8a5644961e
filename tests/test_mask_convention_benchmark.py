"""benchmarks/mask_convention.py: lesions grown and shrunk by whole voxels keep their labels, never merge,
match scipy's binary morphology on an isolated lesion, and the cohort copy leaves images and input alone;
`--compare` scores every run on the lesions all runs scored (checked against scikit-learn)."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from conftest import write_predicted_lesions, write_toy_rim_cohort

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import mask_convention

BALL = ndimage.generate_binary_structure(3, 1)  # Euclidean distance <= 1 voxel: the 6-neighbourhood


def two_lesions() -> np.ndarray:
    labels = np.zeros((24, 24, 24), np.int32)
    grid = np.indices(labels.shape).transpose(1, 2, 3, 0)
    labels[np.linalg.norm(grid - (7, 12, 12), axis=-1) <= 4] = 1
    labels[np.linalg.norm(grid - (16, 12, 12), axis=-1) <= 4] = 2  # touches lesion 1: its edge there
    labels[20:23, 2:4, 2:4] = 3  # 12 voxels, nothing deeper than one voxel from its edge
    return labels


def test_growing_matches_binary_dilation_away_from_other_lesions_and_never_merges():
    labels = two_lesions()
    grown = mask_convention.grow_lesions(labels, 1)
    assert set(np.unique(grown)) == {0, 1, 2, 3}
    assert np.array_equal(grown[labels > 0], labels[labels > 0])  # lesion voxels keep their label
    alone = np.zeros_like(labels)
    alone[labels == 3] = 1
    assert np.array_equal(grown == 3, ndimage.binary_dilation(alone, BALL))
    assert (grown == 1).sum() > (labels == 1).sum()


def test_shrinking_matches_binary_erosion_and_keeps_lesions_that_would_vanish():
    labels = two_lesions()
    shrunk, kept = mask_convention.shrink_lesions(labels, 1)
    assert kept == 1 and np.array_equal(shrunk == 3, labels == 3)
    expected = ndimage.binary_erosion(np.pad(labels == 1, 1), BALL)[1:-1, 1:-1, 1:-1]
    assert np.array_equal(shrunk == 1, expected)
    assert set(np.unique(shrunk)) == {0, 1, 2, 3}


def test_cohort_copy_changes_only_the_lesion_maps(tmp_path):
    cohort = write_toy_rim_cohort(tmp_path / "toy", n_participants=2)
    lesion = "derivatives/lesions/sub-00/anat/sub-00_desc-lesions_dseg.nii.gz"
    before = np.asarray(nib.load(cohort / lesion).dataobj)
    summary = mask_convention.convert_cohort(cohort, tmp_path / "grown", 1)
    assert summary == {"participants": 2, "lesions": 8, "kept_unshrunk": 0}
    assert np.array_equal(np.asarray(nib.load(cohort / lesion).dataobj), before)  # input untouched
    after = np.asarray(nib.load(tmp_path / "grown" / lesion).dataobj)
    assert (after > 0).sum() > (before > 0).sum() and set(np.unique(after)) == set(np.unique(before))
    qsm = "sub-00/anat/sub-00_Chimap.nii.gz"
    assert (cohort / qsm).read_bytes() == (tmp_path / "grown" / qsm).read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        mask_convention.convert_cohort(cohort, tmp_path / "grown", -1)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # the toy lesions are all one size
def test_compare_scores_every_run_on_the_lesions_all_of_them_scored(tmp_path):
    from sklearn.metrics import average_precision_score, roc_auc_score

    cohort = write_toy_rim_cohort(tmp_path / "toy", n_participants=3)
    rims = {(f"sub-{n:02d}", k): int((n + k - 1) % 3 == 0) for n in range(3) for k in range(1, 5)}
    scores = {"run-a": [0.9, 0.2, 0.4, 0.8, 0.1, 0.3, 0.7, 0.6, 0.5, 0.35, 0.25, 0.95],
              "run-b": [0.3, 0.6, 0.9, 0.2, 0.4, 0.1, 0.8, 0.7, 0.5, 0.45, 0.15, 0.05]}
    for run, values in scores.items():
        for n in range(3):
            rows = [{"index": k, "probability": values[4 * n + k - 1]} for k in range(1, 5)]
            if run == "run-b" and n == 1:
                rows[2] = {"index": 3, "probability": float("nan"), "excluded": "too_small"}
            write_predicted_lesions(tmp_path / run / "m" / "pred-toy" / "derivatives" / "prlkit" / f"sub-{n:02d}" /
                                    "anat" / f"sub-{n:02d}_lesions.tsv", rows)
    rows = mask_convention.common_lesion_metrics({tmp_path / "run-a": cohort, tmp_path / "run-b": cohort}, ["m"])
    keep = [i for i in range(12) if i != 6]  # sub-01 lesion 3: excluded in run-b, so left out of both
    truth = [list(rims.values())[i] for i in keep]
    for run in scores:
        row = next(r for r in rows if r["test"] == f"{run}: toy" and r["method"] == "m")
        assert row["n_lesions"] == 11 and row["n_rim_pos"] == sum(truth)
        assert row["roc_auc"] == pytest.approx(roc_auc_score(truth, [scores[run][i] for i in keep]))
        assert row["pr_auc"] == pytest.approx(average_precision_score(truth, [scores[run][i] for i in keep]))
    assert {r["method"] for r in rows} == {"m", "shell_minus_core"}

