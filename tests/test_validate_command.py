"""`prlkit validate`: summary on good cohorts; one-line error, exit 1 and no output on bad input."""

import gzip
import json

import numpy as np
import pytest

from prlkit.cli import main

from conftest import save, subject_volumes, write_subject

ANAT = "sub-02/anat"
LESIONS = "derivatives/lesions/sub-02/anat"


def run_json(capsys, *args):
    code = main(["validate", *map(str, args), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_summary_of_a_good_cohort(bids, capsys):
    code, report, _err = run_json(capsys, bids)
    assert code == 0 and report["problems"] == []
    totals = report["totals"]
    assert (totals["subjects"], totals["sessions"], totals["lesions"]) == (2, 2, 4)
    assert (totals["included"], totals["rim_pos"], totals["rim_neg"], totals["excluded_too_small"]) == (2, 2, 0, 2)
    assert totals["sessions_with_phase"] == 0
    assert main(["validate", str(bids)]) == 0
    out = capsys.readouterr().out
    assert "sub-01" in out and "rim_pos=2" in out


def test_phase_images_are_found_and_counted(bids, capsys):
    qsm = bids / "sub-01/anat/sub-01_Chimap.nii.gz"
    (qsm.parent / "sub-01_part-phase_T2starw.nii.gz").write_bytes(qsm.read_bytes())
    _, report, _ = run_json(capsys, bids)
    assert report["totals"]["sessions_with_phase"] == 1


def test_min_voxels_override(bids, capsys):
    _, report, _ = run_json(capsys, bids, "--min-voxels", "10")
    assert report["totals"]["included"] == 4 and report["totals"]["rim_neg"] == 2


def test_min_volume_override(bids, capsys):
    _, report, _ = run_json(capsys, bids, "--min-voxels", "0", "--min-volume-mm3", "1e6")
    assert report["totals"]["included"] == 0 and report["totals"]["excluded_too_small"] == 4


def corrupt(root):
    (root / ANAT / "sub-02_Chimap.nii.gz").write_bytes(gzip.compress(b"garbage" * 100))


def four_d(root):
    save(root / ANAT / "sub-02_FLAIR.nii.gz", np.zeros((24, 24, 24, 3), np.float32))


def other_shape(root):
    save(root / ANAT / "sub-02_Chimap.nii.gz", np.zeros((24, 24, 23), np.float32))


def shifted(root):
    affine = np.eye(4)
    affine[2, 3] = 1.5
    save(root / ANAT / "sub-02_FLAIR.nii.gz", subject_volumes()[1], affine)


def nan_in_lesion(root):
    qsm = subject_volumes()[0]
    qsm[8, 8, 8] = np.nan
    save(root / ANAT / "sub-02_Chimap.nii.gz", qsm)


def fractional_labels(root):
    labels = subject_volumes()[2].astype(np.float32)
    labels[labels == 2] = 1.5
    save(root / LESIONS / "sub-02_desc-lesions_dseg.nii.gz", labels)


def table_extra_label(root):
    (root / LESIONS / "sub-02_desc-lesions_dseg.tsv").write_text("index\trim\n1\t1\n2\t0\n3\t0\n")


def table_missing_label(root):
    (root / LESIONS / "sub-02_desc-lesions_dseg.tsv").write_text("index\trim\n1\t1\n")


def unknown_rim(root):
    (root / LESIONS / "sub-02_desc-lesions_dseg.tsv").write_text("index\trim\n1\tyes\n2\t0\n")


def missing_flair(root):
    (root / ANAT / "sub-02_FLAIR.nii.gz").unlink()


def listed_without_files(root):
    with (root / "participants.tsv").open("a") as handle:
        handle.write("sub-09\tB\n")


def files_without_listing(root):
    write_subject(root, "sub-07")


@pytest.mark.parametrize(
    "damage, file, problem",
    [
        (missing_flair, "sub-02_FLAIR.nii.gz", "missing flair file for sub-02"),
        (corrupt, "sub-02_Chimap.nii.gz", "not a readable NIfTI"),
        (four_d, "sub-02_FLAIR.nii.gz", "expected a 3-D image, got 4-D"),
        (other_shape, "sub-02_Chimap.nii.gz", r"shape \(24, 24, 23\) vs \(24, 24, 24\)"),
        (shifted, "sub-02_FLAIR.nii.gz", "up to 1.5 mm apart"),
        (nan_in_lesion, "sub-02_Chimap.nii.gz", "NaN/Inf voxel.* inside lesions"),
        (fractional_labels, "sub-02_desc-lesions_dseg.nii.gz", "non-integer lesion labels"),
        (table_extra_label, "sub-02_desc-lesions_dseg.tsv", r"label\(s\) 3 are not in the lesion map"),
        (table_missing_label, "sub-02_desc-lesions_dseg.tsv", r"label\(s\) 2 have no row"),
        (unknown_rim, "sub-02_desc-lesions_dseg.tsv", "unknown rim value 'yes'"),
        (listed_without_files, "participants.tsv", "sub-09 is listed but has no folder"),
        (files_without_listing, "sub-07", "not listed in"),
    ],
)
def test_bad_input_gives_one_line_error_and_exit_1(bids, capsys, damage, file, problem):
    damage(bids)
    before = sorted(p for p in bids.rglob("*"))
    code = main(["validate", str(bids)])
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prlkit: error:")]
    assert code == 1
    assert len(err_lines) == 1, err_lines
    assert file in err_lines[0]
    assert __import__("re").search(problem, err_lines[0]), err_lines[0]
    assert sorted(p for p in bids.rglob("*")) == before  # nothing written, inputs untouched


def test_nan_outside_brain_is_a_warning(bids, capsys):
    qsm = subject_volumes()[0]
    qsm[0, 0, 0] = np.nan
    save(bids / ANAT / "sub-02_Chimap.nii.gz", qsm)
    code, report, _ = run_json(capsys, bids)
    assert code == 0 and any("NaN/Inf voxel(s) outside lesions set to 0" in w for w in report["warnings"])


def test_empty_lesion_map_is_valid_with_warning(bids, capsys):
    save(bids / LESIONS / "sub-02_desc-lesions_dseg.nii.gz", np.zeros((24, 24, 24), np.uint8))
    (bids / LESIONS / "sub-02_desc-lesions_dseg.tsv").write_text("index\trim\n")
    code, report, _ = run_json(capsys, bids)
    assert code == 0 and report["sessions"][1]["lesions"] == 0
    assert any("lesion map is empty" in w for w in report["warnings"])


def test_lesion_at_border_is_valid_and_flagged(bids, capsys):
    labels = subject_volumes()[2]
    labels[labels == 2] = 0
    labels[0:2, 10:13, 10:13] = 2
    save(bids / LESIONS / "sub-02_desc-lesions_dseg.nii.gz", labels)
    code, report, _ = run_json(capsys, bids)
    assert code == 0 and report["sessions"][1]["at_border"] == 1 and report["sessions"][0]["at_border"] == 0


def test_missing_dataset_exit_1(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "none")]) == 1
    assert "no such dataset folder" in capsys.readouterr().err
