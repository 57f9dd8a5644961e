"""`prlkit report`: one self-contained HTML page for cv and predict folders; lesion crops; bad folders."""

import argparse
import base64
import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from prlkit.commands import report
from prlkit.config import LesionConfig
from prlkit.data.bids import discover_cohort
from prlkit.data.session import load_session
from prlkit.errors import PrlkitError
from prlkit.eval.results import summarise, write_results
from prlkit.predict import write_dataset_description, write_session, write_subjects_table
from prlkit.report.gallery import display_session, lesion_figure
from prlkit.report.plots import figure_png, write_cv_figures

from conftest import write_toy_rim_cohort

METHODS = ("frodo", "aprl", "deepprl")


def run_report(folder, **options):
    parser = argparse.ArgumentParser()
    report.register(parser.add_subparsers())
    argv = ["report", str(folder)]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    args = parser.parse_args(argv)
    return args.func(args)


def assert_self_contained(page: str) -> None:
    """No external reference of any kind; every image is an embedded PNG; every link stays in the page."""
    for external in ("http://", "https://", 'src="/', "<script", "<link", "url(", "@import"):
        assert external not in page, external
    sources = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)
    assert sources and len(sources) == page.count("<img")
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    ids = set(re.findall(r"\bid=\"([^\"]+)\"", page))
    for target in re.findall(r"\bhref=\"([^\"]*)\"", page):
        assert target.startswith("#") and target[1:] in ids, target


@pytest.fixture(scope="module")
def cv_folder(tmp_path_factory):
    """A cv output folder built from hand-made out-of-fold predictions (no training needed)."""
    out = tmp_path_factory.mktemp("cv")
    rng = np.random.default_rng(0)
    n = 48
    label = (np.arange(n) % 3 == 0).astype(int)
    rows = []
    for method, noise in zip(METHODS, (0.5, 1.0, 2.0)):
        probability = 1 / (1 + np.exp(-(2 * label - 1) - noise * rng.standard_normal(n)))
        rows.append(pd.DataFrame({
            "participant_id": [f"sub-{i // 4:02d}" for i in range(n)], "session_id": "", "index": np.arange(n) % 4 + 1,
            "lesion_row": np.arange(n), "fold": (np.arange(n) // 4) % 3, "method": method,
            "probability": probability, "label": label, "threshold": 0.5, "decision": (probability >= 0.5).astype(int),
        }))
    oof = pd.concat(rows, ignore_index=True)
    oof.to_csv(out / "oof_predictions.tsv", sep="\t", index=False)
    write_results(summarise(oof, "frodo"), out)
    write_cv_figures(oof, out)
    (out / "config.yaml").write_text("profile: quick\nsplit:\n  n_folds: 3\n")
    return out


def test_cv_report_is_self_contained_and_has_every_method(cv_folder, tmp_path):
    out = tmp_path / "cv.html"
    assert run_report(cv_folder, out=out) == 0
    page = out.read_text()
    assert_self_contained(page)
    assert page.count("<img") == 3  # curves, counts, calibration
    assert (cv_folder / "cv_curves.png").read_bytes() == base64.b64decode(re.findall(r"base64,([^\"]+)", page)[0])
    for method in METHODS:
        assert f"<tr><td>{method}</td>" in page  # a row in the lesion-level table
    # lesion level, bootstrap, comparisons, subject level, two operating points, 3 folds
    assert page.count("<tr><td>aprl</td>") == 6 + 3 and "RimNet" in page  # + the bootstrap table
    assert "<tr><td>frodo</td>" in page and "DeLong" in page and "McNemar" in page
    assert "n_folds: 3" in page  # the config
    assert "participant-level bootstrap" in page and page.count("chosen on the test predictions") >= 2
    assert "DeLong p (Holm)" in page and "McNemar p (Holm)" in page  # two methods against the reference


def test_holm_adjusted_p_values_match_statsmodels(cv_folder):
    from statsmodels.stats.multitest import multipletests

    results = json.loads((cv_folder / "results.json").read_text())
    for test in ("delong", "mcnemar"):
        raw = [row[test]["p_value"] for row in results["comparisons"]]
        assert len(raw) == 2
        assert [row[test]["p_holm"] for row in results["comparisons"]] == pytest.approx(
            multipletests(raw, method="holm")[1])


def test_cv_report_shows_the_over_seeds_table(cv_folder, tmp_path):
    from prlkit.eval.results import seed_summary

    for name in ("oof_predictions.tsv", "config.yaml"):
        (tmp_path / name).write_bytes((cv_folder / name).read_bytes())
    oof = pd.read_csv(cv_folder / "oof_predictions.tsv", sep="\t", keep_default_na=False)
    other = oof.assign(probability=oof["probability"] ** 2)
    results = summarise(oof, "frodo", n_bootstrap=0) | {"seeds": seed_summary({0: oof, 1: other})}
    write_results(results, tmp_path)
    assert run_report(tmp_path) == 0
    page = (tmp_path / "report.html").read_text()
    assert "Over training seeds (mean ± SD over seeds 0, 1" in page and "participant-level bootstrap" not in page


def test_cv_report_reads_results_of_runs_made_before_the_bootstrap(cv_folder, tmp_path):
    results = json.loads((cv_folder / "results.json").read_text())
    for key in ("bootstrap", "pooled", "n_folds"):
        del results[key]
    for row in results["comparisons"]:
        del row["delong"]["p_holm"], row["mcnemar"]["p_holm"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "oof_predictions.tsv").write_bytes((cv_folder / "oof_predictions.tsv").read_bytes())
    assert run_report(tmp_path) == 0
    page = (tmp_path / "report.html").read_text()
    assert "DeLong p" in page and "DeLong p (Holm)" not in page and "participant-level bootstrap" not in page


def test_cv_report_redraws_missing_figures(cv_folder, tmp_path):
    copy = tmp_path / "cv"
    copy.mkdir()
    for name in ("results.json", "oof_predictions.tsv"):
        (copy / name).write_bytes((cv_folder / name).read_bytes())
    assert run_report(copy) == 0
    page = (copy / "report.html").read_text()
    assert_self_contained(page)
    assert page.count("<img") == 3 and "(no config.yaml)" in page


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """A toy cohort and a predict output for it, with hand-set probabilities (Rim+ lesions high)."""
    root = tmp_path_factory.mktemp("predict")
    dataset = write_toy_rim_cohort(root / "bids", n_participants=2, shape=(36, 36, 36))
    out = root / "pred"
    write_dataset_description(out)
    for n, files in enumerate(discover_cohort(dataset).sessions):
        data = load_session(files, LesionConfig())
        table = data.lesions.copy()
        table["probability"] = np.where(table["rim"] == 1, 0.8, 0.1) + 0.01 * table["index"] + 0.001 * n
        table["rim_pred"] = (table["probability"] >= 0.5).astype(int)
        write_session(out, data, table)
    write_subjects_table(out)
    return dataset, out


def test_predict_report_lists_every_lesion_and_embeds_the_review(predicted, tmp_path):
    dataset, folder = predicted
    out = tmp_path / "review.html"
    assert run_report(folder, dataset=dataset, out=out, top=1) == 0
    page = out.read_text()
    assert_self_contained(page)
    expected_pngs = set()
    for participant in ("sub-00", "sub-01"):
        lesions = pd.read_csv(folder / f"derivatives/prlkit/{participant}/anat/{participant}_lesions.tsv", sep="\t")
        assert len(lesions) == 4
        for row in lesions.itertuples():
            assert f'id="{participant}-row-{row.index}"' in page
        ranked = lesions.sort_values("probability", ascending=False)
        reviewed = set(ranked["index"][ranked["rim_pred"] == 1]) | {ranked["index"].iloc[0]}
        for index in lesions["index"]:
            assert (f'id="{participant}-lesion-{index}"' in page) == (index in reviewed)
        expected_pngs |= {f"{participant}_lesion-{index:03d}.png" for index in reviewed}
    lesion_dir = tmp_path / "review_lesions"
    assert {p.name for p in lesion_dir.iterdir()} == expected_pngs
    assert page.count("<img") == len(expected_pngs)
    for png in lesion_dir.iterdir():  # the same images as in the page
        assert base64.b64encode(png.read_bytes()).decode() in page
    review = page[page.index('id="review-list"'):page.index('id="sub-00"')]
    assert "<details><summary>the list of" in review  # collapsed: the first image is not 100 rows down
    assert "<th>expert</th>" in review and review.count("<td>Rim+</td>") >= 2  # the expert's label beside the call
    assert page.count("<table>") == page.count('<div class="table-wrap"><table>')  # wide tables scroll in a box


def test_predict_report_rerun_replaces_the_image_folder(predicted, tmp_path):
    dataset, folder = predicted
    out = tmp_path / "r.html"
    assert run_report(folder, dataset=dataset, out=out, top=4) == 0
    assert len(list((tmp_path / "r_lesions").iterdir())) == 8
    assert run_report(folder, dataset=dataset, out=out, top=0) == 0
    names = {p.name for p in (tmp_path / "r_lesions").iterdir()}
    assert names and len(names) < 8  # only the Rim+ calls remain; no stale images
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_predict_report_needs_the_predicted_dataset(predicted, tmp_path):
    _dataset, folder = predicted
    with pytest.raises(PrlkitError, match="--dataset"):
        run_report(folder)
    one = write_toy_rim_cohort(tmp_path / "one", n_participants=1, shape=(36, 36, 36))
    with pytest.raises(PrlkitError, match="sub-01"):  # sub-01 was predicted but is not in this dataset
        run_report(folder, dataset=one, out=tmp_path / "x.html")
    other = write_toy_rim_cohort(tmp_path / "other", n_participants=2, shape=(36, 36, 36))  # the same cohort ...
    lesion_map = other / "derivatives/lesions/sub-00/anat/sub-00_desc-lesions_dseg.nii.gz"
    image = nib.load(str(lesion_map))
    labels = np.asarray(image.dataobj).copy()
    moved = np.argwhere(labels == 3)[:20]
    labels[tuple(moved.T)] = 2  # ... but lesions 2 and 3 have other sizes than those that were predicted
    nib.save(nib.Nifti1Image(labels, image.affine), str(lesion_map))
    with pytest.raises(PrlkitError, match="differ"):
        run_report(folder, dataset=other, out=tmp_path / "y.html")
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "y.html").exists()


def test_bad_folder_gives_one_line_error(tmp_path):
    (tmp_path / "results.json").write_text("{}")  # half a cv folder
    with pytest.raises(PrlkitError) as error:
        run_report(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "\n" not in message and "not a prlkit cv folder" in message


def test_display_ignores_storage_order(predicted):
    """A volume stored with flipped and swapped axes (same anatomy) gives the same display grid and figure."""
    dataset, _ = predicted
    files = discover_cohort(dataset).sessions[0]
    data = load_session(files, LesionConfig())
    swap = np.array([[0, -1, 0, 35], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)  # new voxel -> old voxel
    reordered = type(data)(files=files, qsm=np.flip(data.qsm, 0).swapaxes(0, 1),
                           flair=np.flip(data.flair, 0).swapaxes(0, 1),
                           instances=np.flip(data.instances, 0).swapaxes(0, 1), affine=data.affine @ swap,
                           lesions=data.lesions)
    assert np.allclose(reordered.affine @ [3, 35 - 5, 7, 1], data.affine @ [5, 3, 7, 1])  # same point, both grids
    a, b = display_session(data), display_session(reordered)
    np.testing.assert_array_equal(a.instances, b.instances)
    np.testing.assert_array_equal(a.qsm, b.qsm)
    np.testing.assert_allclose(a.affine, b.affine)
    row = data.lesions.iloc[0]
    center = row[["center_mm_x", "center_mm_y", "center_mm_z"]].to_numpy(float)
    figures = [lesion_figure(view, int(row["index"]), center, "t") for view in (a, b)]
    images = [[axis.images[0].get_array() for axis in figure.axes] for figure in figures]
    for left, right in zip(*images):
        np.testing.assert_array_equal(left, right)
    assert not any(axis.collections for axis in figures[0].axes[:3])  # the first row shows QSM bare
    assert all(axis.collections for axis in figures[0].axes[3:])  # the other panels have the outline


def test_panels_are_the_planes_through_the_lesion_centre(predicted):
    """Identity affine, lesion 1 centred at voxel (10, 10, 10): a 15 mm half-width crop cut at the volume edge."""
    dataset, _ = predicted
    data = load_session(discover_cohort(dataset).sessions[0], LesionConfig())
    view = display_session(data)
    figure = lesion_figure(view, 1, (10.0, 10.0, 10.0), "t")
    assert [axis.get_title() for axis in figure.axes[:3]] == ["axial", "coronal", "sagittal"]
    qsm_panels = [axis.images[0].get_array() for axis in figure.axes[:3]]
    np.testing.assert_array_equal(qsm_panels[0], data.qsm[0:26, 0:26, 10].T)
    np.testing.assert_array_equal(qsm_panels[1], data.qsm[0:26, 10, 0:26].T)
    np.testing.assert_array_equal(qsm_panels[2], data.qsm[10, 0:26, 0:26].T)
    np.testing.assert_array_equal(figure.axes[3].images[0].get_array(), qsm_panels[0])  # outlined copy
    flair_panel = figure.axes[6].images[0]
    np.testing.assert_array_equal(flair_panel.get_array(), data.flair[0:26, 0:26, 10].T)
    low, high = flair_panel.get_clim()
    assert low < flair_panel.get_array()[10, 10] <= high  # the lesion centre is not saturated white
    qsm_window = np.percentile(np.abs(data.qsm[0:26, 0:26, 0:26]), 99)
    assert figure.axes[0].images[0].get_clim() == pytest.approx((-np.clip(qsm_window, 0.03, 0.3),
                                                                  np.clip(qsm_window, 0.03, 0.3)))
    assert f"±{np.clip(qsm_window, 0.03, 0.3):.2f} ppm" in figure._suptitle.get_text()


def test_lesion_figure_is_large_enough_to_read_and_has_a_scale_bar(predicted):
    """A review figure is at least 750 px wide and carries a 10 mm scale bar."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    dataset, _ = predicted
    view = display_session(load_session(discover_cohort(dataset).sessions[0], LesionConfig()))
    figure = lesion_figure(view, 1, (10.0, 10.0, 10.0), "t")
    png = figure_png(figure)
    width = int.from_bytes(png[16:20], "big")
    assert width >= 750
    bars = [artist for axis in figure.axes for artist in axis.artists if isinstance(artist, AnchoredSizeBar)]
    assert len(bars) == 1 and bars[0].txt_label.get_text() == "10 mm"


def test_qsm_window_follows_the_neighbourhood():
    """A faint neighbourhood gets a narrow QSM window, a strong one a wide one, both within the limits."""
    from prlkit.report.gallery import DisplaySession, neighbourhood_windows

    rng = np.random.default_rng(0)
    faint, strong = (scale * rng.standard_normal((20, 20, 20)) for scale in (0.02, 0.5))
    widths = []
    for qsm in (faint, strong):
        view = DisplaySession(qsm=qsm, flair=np.ones_like(qsm), instances=np.zeros(qsm.shape, int), affine=np.eye(4),
                              zooms=np.ones(3), boxes=[])
        widths.append(neighbourhood_windows(view, np.array([10, 10, 10]), np.array([5, 5, 5]))[0])
    assert widths[0] == pytest.approx(np.percentile(np.abs(faint[5:16, 5:16, 5:16]), 99))
    assert widths[1] == 0.3
