"""The two report pages: a `prlkit cv` run (tables, curves, tests) and a `prlkit predict` run (lesion review)."""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from html import escape
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from prlkit import __version__
from prlkit.config import LesionConfig
from prlkit.data.bids import SessionFiles, discover_cohort
from prlkit.data.session import SessionData, load_session
from prlkit.errors import InputFileError, PrlkitError
from prlkit.eval.results import (
    TABLE_METRICS,
    TEST_CHOSEN,
    bootstrap_note,
    bootstrap_table,
    comparison_table,
    lesion_table,
    seeds_heading,
    seeds_table,
)
from prlkit.report import html
from prlkit.report.gallery import display_session, lesion_figure
from prlkit.report.plots import CV_FIGURES, figure_png


def cv_page(folder: Path) -> str:
    """The cv run's results.json as tables, its curves and count scatter embedded, and its config."""
    results = json.loads((folder / "results.json").read_text())
    oof = pd.read_csv(folder / "oof_predictions.tsv", sep="\t", keep_default_na=False, na_values={"probability": [""]})
    methods, reference = results["methods"], results["reference"]
    lesions = oof.drop_duplicates("lesion_row")
    overview = (f"{oof['participant_id'].nunique()} participants, {len(lesions)} lesions "
                f"({int(lesions['label'].sum())} expert Rim+), {oof['fold'].nunique()} participant-level folds; "
                f"methods: {', '.join(methods)}; reference for the tests: {reference}.")
    parts = [html.paragraph(overview)]
    lesion_note = ("Threshold metrics use each fold's validation threshold. Method [switches]: the network settings "
                   "that differ from the paper; (n=k): only k folds had both classes.")
    parts.append(html.section("Lesion level (mean ± SD over folds)",
                              html.table(*lesion_table(results)) + html.paragraph(lesion_note, "note")))
    if results.get("seeds"):
        parts.append(html.section(f"Over training seeds {seeds_heading(results)}", html.table(*seeds_table(results))))
    if results.get("bootstrap"):
        boot = html.table(*bootstrap_table(results)) + html.paragraph(bootstrap_note(results), "note")
        parts.append(html.section("Pooled out-of-fold AUCs, participant-level bootstrap", boot))
    parts.append(html.section("Curves, counts and calibration", "\n".join(
        html.png_image(_cv_figure(folder, oof, name), alt) for name, (_, alt) in CV_FIGURES.items()
    )))
    if results["comparisons"]:
        parts.append(html.section(f"Against {reference} (pooled out-of-fold predictions)", _comparisons(results)))
    parts.append(html.section("Subject level", _subject_level(results)))
    parts.append(html.section(f"Review workload at sensitivity ≥ 0.95 ({TEST_CHOSEN})",
                              _operating_point_table(results, "high_sensitivity_operating_point")))
    if "high_specificity_operating_point" in results:  # absent from results.json of older runs
        parts.append(html.section(f"Operating point at specificity ≥ 0.95 ({TEST_CHOSEN}) and calibration",
                                  _operating_point_table(results, "high_specificity_operating_point")))
    per_fold = pd.DataFrame(results["per_fold"])
    columns = [c for c in ["method", "fold", "threshold", "n_lesions", "n_rim", *TABLE_METRICS] if c in per_fold]
    rows = [[row[c] if c in ("method", "fold", "n_lesions", "n_rim") else html.number(row[c]) for c in columns]
            for row in per_fold.to_dict(orient="records")]
    parts.append(html.section("Per fold",
                              html.collapsible("metrics of every (method, fold)", html.table(columns, rows))))
    config = folder / "config.yaml"
    settings = config.read_text() if config.is_file() else "(no config.yaml)"
    parts.append(html.section("Configuration", html.preformatted(settings)))
    return html.document("prlkit cross-validation report", f"{folder} · prlkit {__version__}", parts)


def _cv_figure(folder: Path, oof: pd.DataFrame, name: str) -> bytes:
    """A figure the cv run wrote, or the same figure drawn again from its out-of-fold predictions."""
    if (folder / name).is_file():
        return (folder / name).read_bytes()
    plot = CV_FIGURES[name][0]
    with tempfile.TemporaryDirectory() as scratch:
        plot(oof, Path(scratch) / name)
        return (Path(scratch) / name).read_bytes()


def _comparisons(results: dict) -> str:
    note = ("DeLong: paired test of ROC AUCs on the same lesions. McNemar: paired test of the Rim+ calls "
            "(b = lesions only this method calls correctly, c = only the reference). Both treat lesions as "
            "independent; the bootstrap interval resamples participants. Holm: adjusted for the number of "
            "methods compared with the reference.")
    return html.table(*comparison_table(results)) + html.paragraph(note, "note")


def _subject_level(results: dict) -> str:
    header = ["method", "participants", "Pearson r (95 % CI), predicted count", "MSE", "Pearson r, expected count",
              "MSE, expected", "chronic active: sensitivity", "specificity"]
    rows = []
    for method in results["methods"]:
        s = results["subject_level"][method]
        rows.append([method, s["n_participants"],
                     f"{html.number(s['count_pearson_r'])} ({html.number(s['count_pearson_ci_low'])}, "
                     f"{html.number(s['count_pearson_ci_high'])})", html.number(s["count_mse"], 2),
                     html.number(s["expected_pearson_r"]), html.number(s["expected_mse"], 2),
                     html.number(s["patient_sensitivity"], 2), html.number(s["patient_specificity"], 2)])
    note = ("Predicted count: lesions called Rim+ per participant; expected count: sum of probabilities. "
            "Chronic active: at least 4 Rim+ lesions.")
    return html.table(header, rows) + html.paragraph(note, "note")


OPERATING_POINT_NOTES = {
    "high_sensitivity_operating_point": "The most specific threshold that still finds at least 95 % of the expert "
    "Rim+ lesions (pooled out-of-fold predictions): an expert then reviews only the lesions above it. The threshold "
    "is chosen on the test predictions themselves, so the workload is optimistic.",
    "high_specificity_operating_point": "The most sensitive threshold whose specificity is at least 95 % (RimNet's "
    "operating point, pooled out-of-fold predictions; chosen on the test predictions themselves, so optimistic); "
    "the Brier score is the mean squared error of the "
    "probabilities (lower is better; see the calibration figure).",
}


def _operating_point_table(results: dict, key: str) -> str:
    """One pooled operating point per method (`key` of results.json), with its review workload."""
    brier = "brier" in results[key][results["methods"][0]]
    header = ["method", "threshold", "sensitivity", "specificity", "PPV", "lesions called Rim+",
              "share of all lesions", *(["Brier score"] if brier else [])]
    rows = []
    for method in results["methods"]:
        o = results[key][method]
        rows.append([method, html.number(o["threshold"]), html.number(o["sensitivity"]), html.number(o["specificity"]),
                     html.number(o.get("ppv")), f"{o['n_review']:.0f}", f"{100 * o['review_fraction']:.0f} %",
                     *([html.number(o["brier"])] if brier else [])])
    return html.table(header, rows) + html.paragraph(OPERATING_POINT_NOTES[key], "note")


def predict_page(folder: Path, dataset: Path, top: int) -> tuple[str, dict[str, bytes]]:
    """The predict run's subjects, a review list and per-session lesion galleries; also the gallery PNGs by name.

    The review list holds every lesion called Rim+ plus each session's `top` most probable lesions.
    """
    from prlkit.predict import session_outputs  # imports torch: only predict reports need it

    base = folder / "derivatives" / "prlkit"
    subjects = pd.read_csv(base / "subjects.tsv", sep="\t", dtype={"session_id": str}, keep_default_na=False)
    sessions = {(s.participant_id, s.session_id or ""): s for s in discover_cohort(dataset).sessions}
    pngs: dict[str, bytes] = {}
    review_rows, review_ids, session_sections = [], [], []
    for row in subjects.itertuples():
        files = sessions.get((row.participant_id, row.session_id))
        if files is None:
            name = f"{row.participant_id} {row.session_id}".strip()
            raise PrlkitError(f"{dataset}: no session {name} of {base / 'subjects.tsv'}; "
                              "give the dataset that was predicted")
        table = session_outputs(folder, files)["lesions"]
        data = load_session(read_as_predicted(files, table), LesionConfig())
        lesions = _session_lesions(data, table, top)
        view = display_session(data)
        cards = []
        for lesion in lesions[lesions["review"]].itertuples():
            anchor = f"{files.name}-lesion-{lesion.index}"
            caption = (f"{files.name} lesion {lesion.index}: p = {_probability(lesion.probability)}, "
                       f"{_call(lesion.rim_pred)}")
            png = figure_png(lesion_figure(view, lesion.index, _center(lesion), caption))
            pngs[f"{files.name}_lesion-{lesion.index:03d}.png"] = png
            cards.append(_card(anchor, lesion, png, caption))
            review_rows.append([html.link(anchor, f"{files.name} lesion {lesion.index}"), *_lesion_cells(lesion),
                                lesion.expert])
            review_ids.append(f"review-{anchor}")
        session_sections.append(html.section(files.name, _session_body(files.name, lesions, cards), anchor=files.name))
    has_expert = any(row[-1] for row in review_rows)
    header = ["lesion", "probability", "call", "volume (mm³)", "centre x, y, z (mm)", *(["expert"] * has_expert)]
    review = html.paragraph(
        f"Every lesion called Rim+ (probability at or above the model's decision threshold) and the {top} most "
        "probable lesions of each session, most probable first; the links lead to the images.", "note"
    ) + html.collapsible(f"the list of {len(review_rows)} lesions to review", html.table(
        header, [row if has_expert else row[:-1] for row in review_rows], row_ids=review_ids,
        raw_columns=frozenset({0})))
    parts = [html.section("Subjects", _subjects_table(subjects)),
             html.section("Review list", review, anchor="review-list"), *session_sections]
    subtitle = (f"{base} · images from {dataset} · prlkit {__version__} · QSM and FLAIR windowed per lesion "
                "neighbourhood (QSM window on each figure) · radiological convention (patient right on image left)")
    return html.document("prlkit lesion review", subtitle, parts), pngs


def _subjects_table(subjects: pd.DataFrame) -> str:
    """subjects.tsv with links to the sessions; the session column only when the cohort has sessions."""
    with_sessions = bool(subjects["session_id"].astype(bool).any())
    header = ["participant", *(["session"] if with_sessions else []), "lesions", "classified", "Rim+ calls",
              "expected Rim+ count", "chronic active (≥ 4)"]
    rows = [[html.link(f"{r.participant_id}_{r.session_id}" if r.session_id else r.participant_id, r.participant_id),
             *([r.session_id] if with_sessions else []), r.n_lesions, r.n_classified, r.n_rim_pred,
             html.number(r.expected_rim_count, 2), "yes" if r.chronic_active else "no"]
            for r in subjects.itertuples()]
    note = "Expected count: the sum of the lesion probabilities. Chronic active: at least 4 lesions called Rim+."
    return html.table(header, rows, raw_columns=frozenset({0})) + html.paragraph(note, "note")


def read_as_predicted(files: SessionFiles, lesions_tsv: Path) -> SessionFiles:
    """The session read as predict read it: phase with the recorded sign where its lesions.tsv says so."""
    if not lesions_tsv.is_file():
        return files
    recorded = pd.read_csv(lesions_tsv, sep="\t", keep_default_na=False, nrows=1)
    if recorded.empty or recorded.get("susceptibility", pd.Series(["qsm"])).iloc[0] != "phase":
        return files
    return dataclasses.replace(files, susceptibility="phase", phase_sign=recorded["phase_sign"].iloc[0])


def _session_lesions(data: SessionData, path: Path, top: int) -> pd.DataFrame:
    """The session's lesions.tsv, ranked, with the expert label (if any) and whether to review each lesion."""
    lesions = _ranked_lesions(path)
    _check_same_lesions(data, lesions, path)
    expert = data.lesions.set_index("index")["rim"].reindex(lesions["index"])
    lesions["expert"] = [_call(label) if not pd.isna(label) else "" for label in expert]
    lesions["review"] = ((lesions["rim_pred"] == 1) | (lesions["rank"] <= top)) & (lesions["excluded"] == "")
    return lesions


def _ranked_lesions(path: Path) -> pd.DataFrame:
    """A session's lesions.tsv, most probable first (excluded lesions last), with a 1-based `rank`."""
    if not path.is_file():
        raise InputFileError(path, "missing per-lesion table of a session listed in subjects.tsv")
    lesions = pd.read_csv(path, sep="\t", keep_default_na=False, na_values={"probability": [""]})
    lesions = lesions.sort_values("probability", ascending=False, na_position="last", kind="stable")
    lesions["rank"] = range(1, len(lesions) + 1)
    return lesions.reset_index(drop=True)


def _check_same_lesions(data: SessionData, lesions: pd.DataFrame, path: Path) -> None:
    """The dataset's lesion map must give the lesions that were predicted (same labels, same sizes)."""
    found = data.lesions.set_index("index")["voxels"]
    expected = lesions.set_index("index")["voxels"]
    if not found.reindex(expected.index).eq(expected).all():
        raise InputFileError(data.files.lesions, f"its lesions differ from {path}; give the dataset that was predicted")


def _session_body(name: str, lesions: pd.DataFrame, cards: list[str]) -> str:
    """Every lesion of the session in a (closed) table, row id `<name>-row-<index>`, then the gallery (cards)."""
    has_expert = bool((lesions["expert"] != "").any())
    header = ["rank", "lesion", "probability", "call", "volume (mm³)", "centre x, y, z (mm)", "excluded"]
    rows = [[lesion.rank,
             html.link(f"{name}-lesion-{lesion.index}", str(lesion.index)) if lesion.review else lesion.index,
             *_lesion_cells(lesion), lesion.excluded, *([lesion.expert] if has_expert else [])]
            for lesion in lesions.itertuples()]
    ids = [f"{name}-row-{index}" for index in lesions["index"]]
    classes = ["rim" if call == 1 else "" for call in lesions["rim_pred"]]
    table = html.table(header + (["expert"] if has_expert else []), rows, row_ids=ids, row_classes=classes,
                       raw_columns=frozenset({1}))
    gallery = (f'<div class="gallery">{"".join(cards)}</div>' if cards
               else html.paragraph("No lesion to review.", "note"))
    return html.collapsible(f"all {len(lesions)} lesions", table) + gallery


def _card(anchor: str, lesion, png: bytes, caption: str) -> str:
    details = f"volume {lesion.volume_mm3:.0f} mm³ · centre ({_location(lesion)}) mm · rank {lesion.rank}"
    if lesion.expert:
        details += f" · expert: {lesion.expert}"
    css = "card rim" if lesion.rim_pred == 1 else "card"
    return f'<div class="{css}" id="{escape(anchor)}">{html.png_image(png, caption)}{html.paragraph(details)}</div>'


def _lesion_cells(lesion) -> list[str]:
    call = "not classified" if lesion.excluded else _call(lesion.rim_pred)
    return [_probability(lesion.probability), call, f"{lesion.volume_mm3:.0f}", _location(lesion)]


def _center(lesion) -> tuple[float, float, float]:
    return (lesion.center_mm_x, lesion.center_mm_y, lesion.center_mm_z)


def _location(lesion) -> str:
    return ", ".join(f"{value:.1f}" for value in _center(lesion))


def _probability(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _call(value: int) -> str:
    return "Rim+" if value == 1 else "Rim-"


def folder_kind(folder: Path) -> str:
    """'cv' (results.json + oof_predictions.tsv) or 'predict' (derivatives/prlkit/subjects.tsv)."""
    if (folder / "results.json").is_file() and (folder / "oof_predictions.tsv").is_file():
        return "cv"
    if (folder / "derivatives" / "prlkit" / "subjects.tsv").is_file():
        return "predict"
    raise PrlkitError(f"{folder}: not a prlkit cv folder (results.json, oof_predictions.tsv) "
                      "nor a prlkit predict folder (derivatives/prlkit/subjects.tsv)")


def recorded_dataset(folder: Path) -> Path | None:
    """The dataset `prlkit predict` recorded as SourceDatasets in the folder's dataset_description.json, if any."""
    path = folder / "derivatives" / "prlkit" / "dataset_description.json"
    try:
        sources = json.loads(path.read_text(encoding="utf-8")).get("SourceDatasets") or []
    except (OSError, ValueError, AttributeError):
        return None
    urls = [source.get("URL", "") for source in sources if isinstance(source, dict)]
    local = [url2pathname(urlparse(url).path) for url in urls if url.startswith("file:")]
    return Path(local[0]) if local else None


def write_report(folder: Path, out: Path | None = None, dataset: Path | None = None, top: int = 5) -> Path:
    """Write the HTML report of a cv or predict folder (default FOLDER/report.html); returns its path."""
    from prlkit.atomic import replace_directory, write_text_atomic

    out = out or folder / "report.html"
    if folder_kind(folder) == "cv":
        page = cv_page(folder)
    else:
        dataset = dataset or recorded_dataset(folder)
        if dataset is None:
            raise PrlkitError(f"{folder}: a predict report needs --dataset, the BIDS folder that was predicted")
        page, pngs = predict_page(folder, dataset, top)
        replace_directory(out.with_name(f"{out.stem}_lesions"), pngs)
    write_text_atomic(out, page)
    return out
