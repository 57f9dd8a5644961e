"""Cohort discovery from BIDS folders (with and without sessions) and manifest CSVs."""

import pytest

from prlkit.data.bids import PrlkitWarning, discover_cohort
from prlkit.errors import PrlkitError

from conftest import write_bids, write_subject


def test_bids_without_sessions(bids):
    cohort = discover_cohort(bids)
    assert [s.name for s in cohort.sessions] == ["sub-01", "sub-02"]
    session = cohort.sessions[0]
    assert session.qsm.name == "sub-01_Chimap.nii.gz" and session.rim_table is not None
    assert session.site == "A" and session.t1w is None and session.phase is None and not cohort.problems


def test_bids_phase_image_is_found_beside_the_qsm(bids):
    qsm = bids / "sub-01/anat/sub-01_Chimap.nii.gz"
    phase = qsm.parent / "sub-01_part-phase_T2starw.nii.gz"
    phase.write_bytes(qsm.read_bytes())
    first, second = discover_cohort(bids).sessions
    assert first.phase == phase and second.phase is None


def test_bids_with_sessions_and_plain_nii(tmp_path):
    root = write_bids(tmp_path / "b", participants=("sub-01",), sessions=("ses-1", "ses-2"), ext=".nii")
    cohort = discover_cohort(root)
    assert [s.name for s in cohort.sessions] == ["sub-01_ses-1", "sub-01_ses-2"]
    assert all(s.flair.suffix == ".nii" and not s.missing() for s in cohort.sessions)


def test_missing_modality_is_reported_with_expected_path(bids):
    (bids / "sub-02" / "anat" / "sub-02_FLAIR.nii.gz").unlink()
    session = discover_cohort(bids).sessions[1]
    [(role, path)] = session.missing()
    assert role == "flair" and path.name == "sub-02_FLAIR.nii.gz"


def test_participants_tsv_and_folders_must_agree(bids):
    write_subject(bids, "sub-03")
    (bids / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\nsub-04\n")
    problems = discover_cohort(bids).problems
    assert any("sub-04 is listed but has no folder" in p for p in problems)
    assert any("sub-03 is not listed" in p for p in problems)


def test_missing_participants_tsv_warns(bids):
    (bids / "participants.tsv").unlink()
    with pytest.warns(PrlkitWarning, match="participants.tsv: missing"):
        cohort = discover_cohort(bids)
    assert len(cohort.sessions) == 2


def test_manifest_csv(bids, tmp_path):
    manifest = bids / "manifest.csv"
    manifest.write_text(
        "participant_id,qsm,flair,lesions,rim_table,site\n"
        "p1,sub-01/anat/sub-01_Chimap.nii.gz,sub-01/anat/sub-01_FLAIR.nii.gz,"
        "derivatives/lesions/sub-01/anat/sub-01_desc-lesions_dseg.nii.gz,"
        "derivatives/lesions/sub-01/anat/sub-01_desc-lesions_dseg.tsv,X\n"
    )
    [session] = discover_cohort(manifest).sessions
    assert session.participant_id == "sub-p1" and session.site == "X"  # BIDS prefix added
    assert session.qsm == bids / "sub-01/anat/sub-01_Chimap.nii.gz" and session.rim_table.is_file()


def test_manifest_ids_get_their_bids_prefixes_once(bids):
    manifest = bids / "manifest.csv"
    row = ("sub-01/anat/sub-01_Chimap.nii.gz,sub-01/anat/sub-01_FLAIR.nii.gz,"
           "derivatives/lesions/sub-01/anat/sub-01_desc-lesions_dseg.nii.gz")
    manifest.write_text(f"participant_id,session_id,qsm,flair,lesions\n01,1,{row}\nsub-02,ses-2,{row}\n")
    ids = [(s.participant_id, s.session_id) for s in discover_cohort(manifest).sessions]
    assert ids == [("sub-01", "ses-1"), ("sub-02", "ses-2")]


def test_manifest_phase_column_is_optional_and_checked(bids):
    manifest = bids / "manifest.csv"
    row = ("sub-01/anat/sub-01_Chimap.nii.gz,sub-01/anat/sub-01_FLAIR.nii.gz,"
           "derivatives/lesions/sub-01/anat/sub-01_desc-lesions_dseg.nii.gz")
    manifest.write_text(f"participant_id,qsm,flair,lesions,phase\nsub-01,{row},sub-01/anat/sub-01_Chimap.nii.gz\n")
    [session] = discover_cohort(manifest).sessions
    assert session.phase == bids / "sub-01/anat/sub-01_Chimap.nii.gz"
    manifest.write_text(f"participant_id,qsm,flair,lesions,phase\nsub-01,{row},missing_phase.nii.gz\n")
    with pytest.raises(PrlkitError, match=r"missing_phase\.nii\.gz: phase file named in manifest\.csv line 2"):
        discover_cohort(manifest)


def test_manifest_missing_column(tmp_path):
    (tmp_path / "m.csv").write_text("participant_id,qsm,flair\np1,a,b\n")
    with pytest.raises(PrlkitError, match=r"m\.csv: manifest lacks column\(s\) lesions"):
        discover_cohort(tmp_path / "m.csv")


def test_missing_dataset(tmp_path):
    with pytest.raises(PrlkitError, match="no such dataset"):
        discover_cohort(tmp_path / "nope")
