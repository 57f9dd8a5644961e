"""`prlkit demo` wiring: cv of the main method, the pretrained variant and APRL, fold-ensemble prediction of a new
subject, both reports."""

import pandas as pd

import prlkit.demo as demo
from prlkit.cli import main
from prlkit.config import config_from_dict

from conftest import tiny_config, write_toy_rim_cohort

TINY = tiny_config(finetune={"max_epochs": 2}, split={"n_folds": 3})


def test_demo_cross_validates_predicts_and_reports(tmp_path, monkeypatch, capsys):
    out = tmp_path / "demo"
    write_toy_rim_cohort(out / "data", n_participants=9)  # present data is reused, not simulated again
    write_toy_rim_cohort(out / "new_subject", n_participants=1, seed=5)
    monkeypatch.setattr(demo, "demo_config", lambda: config_from_dict(TINY | {"methods": {
        **TINY["methods"], "frodo_simpretrained": {"finetune": {"max_epochs": 1, "patience": 1}}}}))
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| frodo |" in printed and "| aprl |" in printed and "New subject (fold ensemble)" in printed
    assert "| frodo_simpretrained" in printed
    oof = pd.read_csv(out / "cv" / "oof_predictions.tsv", sep="\t")
    assert len(oof) == 3 * 36 and oof["fold"].nunique() == 3
    assert set(oof["method"]) == {"frodo", "frodo_simpretrained", "aprl"}
    assert len(list((out / "cv" / "frodo").glob("fold-*/model.json"))) == 3
    subjects = pd.read_csv(out / "predictions/derivatives/prlkit/subjects.tsv", sep="\t")
    assert list(subjects["participant_id"]) == ["sub-00"]
    for report in (out / "cv" / "report.html", out / "predictions" / "report.html"):
        assert report.is_file() and "https://" not in report.read_text()
    labelled = pd.read_csv(out / "cv" / "oof_predictions.tsv", sep="\t").query("method == 'frodo'")
    assert f"The cohort holds {int(labelled['label'].sum())} Rim+ lesions" in (out / "demo_results.md").read_text()


def test_timing_of_a_resumed_demo_is_the_sum_of_its_runs():
    interrupted = {"started": 1000.0, "seconds": None}
    finished = {"started": 5000.0, "seconds": 120.0}
    runs = demo.close_interrupted([interrupted, finished], last_write=1200.0)
    assert runs[0]["seconds"] == 200.0 and runs[1] == finished  # until its last file write
    assert demo.close_interrupted([{"started": 1000.0, "seconds": None}], last_write=900.0)[0]["seconds"] == 0.0
    assert demo.total_seconds(runs) == 320.0
    assert demo.timing_text(runs) == "320 s in all, over 2 runs (resumed; the last run took 120 s)"
    assert demo.timing_text([finished]) == "120 s in all"


def test_timing_file_records_an_interrupted_run_and_the_last_write(tmp_path):
    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "fold.tsv").write_text("x")
    demo._write_runs(tmp_path / demo.TIMING_FILE, [{"started": 1.0, "seconds": None}])
    assert demo._read_runs(tmp_path / demo.TIMING_FILE) == [{"started": 1.0, "seconds": None}]
    assert demo._last_write(tmp_path) == (tmp_path / "cv" / "fold.tsv").stat().st_mtime
