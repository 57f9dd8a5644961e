"""`prlkit cv --methods frodo,prlseg`: the segmentation mode on the same folds, in the same tables."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from prlkit.cli import main
from test_segment_train import run_segment

from conftest import tiny_config, write_toy_rim_cohort

TINY = tiny_config(finetune={"max_epochs": 1}, split={"n_folds": 2},
                   segment={"patch_size": 16, "channels": [4, 8], "strides": [2], "rounds_per_epoch": 2,
                            "train": {"max_epochs": 2, "learning_rate": 0.01}})


def joined_with_cv(folder, pattern, cv_rows):
    """The per-session lesion tables under `folder` (name `pattern`) joined to the cv's out-of-fold rows."""
    tables = [pd.read_csv(path, sep="\t").assign(participant_id=path.name.split("_")[0])
              for path in sorted(folder.glob(f"derivatives/prlkit/sub-*/anat/{pattern}"))]
    return pd.concat(tables).merge(cv_rows.reset_index(), on=["participant_id", "index"], suffixes=("", "_cv"))


@pytest.mark.slow
def test_prlseg_runs_in_cv_beside_frodo(tmp_path):
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=6)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    out = tmp_path / "out"
    assert main(["cv", str(dataset), "--out", str(out), "--methods", "frodo,prlseg", "--config",
                 str(tmp_path / "tiny.yaml"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    oof = pd.read_csv(out / "oof_predictions.tsv", sep="\t")
    frodo, prlseg = (oof[oof["method"] == m].set_index("lesion_row").sort_index() for m in ("frodo", "prlseg"))
    assert len(prlseg) == 24 and prlseg.index.equals(frodo.index)  # every lesion once, the same lesions
    pd.testing.assert_series_equal(prlseg["fold"], frodo["fold"])  # the same participant folds
    assert prlseg["probability"].between(0, 1).all()
    assert (prlseg["decision"] == (prlseg["probability"] >= prlseg["threshold"])).all()
    assert prlseg.groupby("fold")["threshold"].nunique().eq(1).all()
    markdown = (out / "results.md").read_text()
    assert "| prlseg |" in markdown and "DeLong" in markdown
    assert (out / "prlseg" / "fold-0" / "model.json").is_file()
    subsets = pd.read_csv(out / "confluent_metrics.tsv", sep="\t")  # the toy lesions never touch
    assert set(subsets["subset"]) == {"isolated"} and subsets.set_index("method")["n_lesions"].to_dict() == {
        "frodo": 24, "prlseg": 24}

    # segment predict with the cv folder: every participant by its held-out fold's model = the cv scores
    assert run_segment(["predict", str(dataset), "--model", str(out), "--out", str(tmp_path / "pred"),
                        "--device", "cpu", "--no-progress"]) == 0
    predicted = joined_with_cv(tmp_path / "pred", "*_desc-prlseg_lesions.tsv", prlseg)
    assert len(predicted) == 24
    description = json.loads((tmp_path / "pred/derivatives/prlkit/dataset_description.json").read_text())
    folds = [str((out / "prlseg" / f"fold-{k}").resolve()) for k in (0, 1)]
    assert [m["Path"] for m in description["GeneratedBy"][0]["Models"]] == folds  # every fold model, by its folder
    np.testing.assert_allclose(predicted["probability"], predicted["probability_cv"], rtol=1e-5)
    assert (predicted["rim_pred"] == predicted["decision"]).all()

    # the same through `prlkit predict --method prlseg`, in the lesion-table format of every method
    assert main(["predict", str(dataset), "--model", str(out), "--method", "prlseg", "--out", str(tmp_path / "p"),
                 "--device", "cpu", "--no-progress"]) == 0
    predicted = joined_with_cv(tmp_path / "p", "*_lesions.tsv", prlseg)
    assert len(predicted) == 24
    description = json.loads((tmp_path / "p/derivatives/prlkit/dataset_description.json").read_text())
    assert {m["Method"] for m in description["GeneratedBy"][0]["Models"]} == {"prlseg"}
    np.testing.assert_allclose(predicted["probability"], predicted["probability_cv"], rtol=1e-5)
