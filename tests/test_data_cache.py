"""The on-disk patch cache: computed once, reused, never stale, never half-written."""

import os

import nibabel as nib
import numpy as np
import pytest

import prlkit
import prlkit.data.cache as cache_module
from prlkit.config import LesionConfig, PatchConfig, get_profile
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.data.features import FEATURE_NAMES
from prlkit.data.patches import session_patches
from prlkit.data.session import load_session
from prlkit.errors import InputFileError
from prlkit.features.radiomics import lesion_feature_table

from conftest import write_bids

QUICK = get_profile("quick")
SMALL = QUICK.__class__(profile="quick", lesions=LesionConfig(min_voxels=20), patches=PatchConfig(size=12))


def test_patch_set_matches_direct_extraction(bids, tmp_path):
    cohort = discover_cohort(bids)
    patch_set = build_patch_set(cohort, SMALL, cache_dir=tmp_path / "cache", progress=False)
    assert patch_set.patches.shape == (4, 3, 12, 12, 12) and patch_set.patches.dtype == np.float16
    assert list(patch_set.lesions["participant_id"]) == ["sub-01", "sub-01", "sub-02", "sub-02"]
    assert list(patch_set.lesions["patch"]) == [0, 1, 2, 3]
    assert patch_set.lesions["rim"].tolist() == [1, 0, 1, 0]
    session = load_session(cohort.sessions[1], SMALL.lesions)
    direct = session_patches(session, session.lesions, SMALL.patches)
    np.testing.assert_allclose(patch_set.patches[2:4].astype(np.float32), direct, atol=1e-3)


def test_excluded_lesions_stay_in_the_table_without_patch(bids, tmp_path):
    patch_set = build_patch_set(discover_cohort(bids), QUICK, cache_dir=tmp_path, progress=False)
    assert list(patch_set.lesions["excluded"]) == ["", "too_small", "", "too_small"]
    assert list(patch_set.lesions["patch"]) == [0, -1, 1, -1]
    assert len(patch_set.labelled()) == 2 and patch_set.patches.shape[0] == 2


def test_second_run_reads_the_cache(bids, tmp_path, monkeypatch):
    cohort = discover_cohort(bids)
    first = build_patch_set(cohort, SMALL, cache_dir=tmp_path, progress=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(cache_module, "load_session", must_not_run)
    second = build_patch_set(cohort, SMALL, cache_dir=tmp_path, progress=False)
    assert second.folder == first.folder
    np.testing.assert_array_equal(np.asarray(second.patches), np.asarray(first.patches))
    assert isinstance(second.patches, np.memmap)


def test_another_prlkit_version_never_reuses_the_patches(bids, tmp_path, monkeypatch):
    cohort, loaded, load = discover_cohort(bids), [], cache_module.load_session
    monkeypatch.setattr(cache_module, "load_session", lambda *args: loaded.append(args) or load(*args))
    first = build_patch_set(cohort, SMALL, cache_dir=tmp_path, progress=False).folder
    assert len(loaded) == 2
    assert build_patch_set(cohort, SMALL, cache_dir=tmp_path, progress=False).folder == first and len(loaded) == 2
    monkeypatch.setattr(prlkit, "__version__", "99.0")
    assert build_patch_set(cohort, SMALL, cache_dir=tmp_path, progress=False).folder != first and len(loaded) == 4


def test_changed_settings_or_inputs_give_a_new_entry(bids, tmp_path):
    cohort = discover_cohort(bids)
    base = build_patch_set(cohort, SMALL, cache_dir=tmp_path, progress=False).folder
    wider = SMALL.__class__(lesions=SMALL.lesions, patches=PatchConfig(size=12, qsm_window_ppm=(-0.2, 0.3)))
    assert build_patch_set(cohort, wider, cache_dir=tmp_path, progress=False).folder != base
    table = cohort.sessions[0].rim_table
    table.write_text("index\trim\n1\t0\n2\t0\n")
    os.utime(table, ns=(1, 1))
    relabelled = build_patch_set(discover_cohort(bids), SMALL, cache_dir=tmp_path, progress=False)
    assert relabelled.folder != base and relabelled.lesions["rim"].tolist()[:2] == [0, 0]


def test_a_bad_session_leaves_no_cache(bids, tmp_path):
    (bids / "sub-02/anat/sub-02_FLAIR.nii.gz").unlink()
    with pytest.raises(InputFileError, match="missing flair file for sub-02"):
        build_patch_set(discover_cohort(bids), SMALL, cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_features_are_cached_per_lesion_row_from_raw_qsm(bids, tmp_path):
    cohort = discover_cohort(bids)
    patch_set = build_patch_set(cohort, QUICK, cache_dir=tmp_path, progress=False)
    assert patch_set.feature_names == FEATURE_NAMES
    assert patch_set.features.shape == (len(patch_set.lesions), len(FEATURE_NAMES))  # excluded rows too
    assert patch_set.features.dtype == np.float64
    session = load_session(cohort.sessions[1], QUICK.lesions)
    expected = lesion_feature_table(session.qsm, session.instances, np.array([1, 2]), 1.0)
    np.testing.assert_array_equal(patch_set.features[2:4], expected.to_numpy())
    # raw ppm, not the normalised patch: the mean is the mean QSM inside the lesion
    inside = session.qsm[session.instances == 1]
    assert patch_set.features[2, FEATURE_NAMES.index("mean")] == pytest.approx(float(inside.astype(np.float64).mean()))
    reread = build_patch_set(cohort, QUICK, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(reread.features, patch_set.features)


def test_cached_features_do_not_move_with_the_lesions(tmp_path):
    shifted = tmp_path / "shifted"
    write_bids(tmp_path / "base", participants=("sub-01",))
    write_bids(shifted, participants=("sub-01",))
    for path in (shifted / "sub-01").rglob("*.nii.gz"), (shifted / "derivatives").rglob("*.nii.gz"):
        for file in path:
            image = nib.load(file)
            rolled = np.roll(np.asarray(image.dataobj), (3, -2, 1), axis=(0, 1, 2))
            nib.save(nib.Nifti1Image(rolled, image.affine), file)
    features = [
        build_patch_set(discover_cohort(root), SMALL, cache_dir=tmp_path / "cache", progress=False).features
        for root in (tmp_path / "base", shifted)
    ]
    assert features[0].shape == (2, len(FEATURE_NAMES))
    np.testing.assert_array_equal(features[0], features[1])
