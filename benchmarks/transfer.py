"""Cross-cohort transfer: train each method on all of cohort A, predict cohort B, score B's lesions.

Per method: `prlkit train A --method M` (all labelled lesions, the method's own validation split),
then `prlkit predict B`; the predicted lesion tables are joined with B's expert labels (its
`_desc-lesions_dseg.tsv` tables, read by prlkit's own session loader) on (participant, session,
lesion index). Scored: every labelled lesion B's predictions classify (not excluded, i.e. at
least `lesions.min_voxels`, default 110). Reported: ROC-AUC, PR-AUC, lesions / Rim+, and the
Spearman correlation of the score with lesion volume among Rim- lesions (a size bias a test
cohort may not share); for trained methods also F1, sensitivity and specificity at the model's own
threshold and the Brier score of its probabilities (`transfer.json` only). A training-free row
`shell_minus_core` scores B directly with the mean QSM of the lesion's edge shell minus that of its
core (`prlkit.synth.calibration.lesion_features`).

Usage: PYTHONPATH=src python benchmarks/transfer.py --train A --test B [C ...] --methods frodo,aprl
       --out DIR [--profile quick] [--config FILE] [--threads 1] [--seed 0] [--cache-dir CACHE]
       [--trained NAME=MODEL ...]
Each method is trained once and predicts every test cohort; `--trained NAME=MODEL` scores a model
folder trained elsewhere (e.g. the shipped pretrained network, zero-shot) without training it. Writes
DIR/<method>/model (must not exist yet), DIR/<method>/pred-<test folder name>, DIR/cache (patches) and DIR/transfer.json
(command, machine, git commit, load averages, wall time of every call); prints a markdown table.
A method whose training or prediction fails gets its error in the JSON and no row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, recall_score, roc_auc_score

import prlkit
from prlkit.config import LesionConfig, get_profile, load_config
from prlkit.data.bids import discover_cohort
from prlkit.data.session import load_session
from prlkit.synth.calibration import lesion_features

KEYS = ["participant_id", "session_id", "index"]
TRAINING_FREE = "shell_minus_core"


def read_predictions(pred_root: Path) -> pd.DataFrame:
    """Every `_lesions.tsv` that `prlkit predict` wrote under `pred_root`, with participant and session ids."""
    tables = []
    for path in sorted((Path(pred_root) / "derivatives" / "prlkit").glob("sub-*/**/*_lesions.tsv")):
        entities = dict(part.split("-", 1) for part in path.name[: -len("_lesions.tsv")].split("_"))
        table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values={"probability": [""]})
        tables.append(table.assign(participant_id=f"sub-{entities['sub']}",
                                   session_id=f"ses-{entities['ses']}" if "ses" in entities else ""))
    if not tables:
        raise FileNotFoundError(f"{pred_root}: no derivatives/prlkit/sub-*/**/*_lesions.tsv")
    return pd.concat(tables, ignore_index=True)


def expert_lesions(cohort: Path | str, lesions: LesionConfig) -> pd.DataFrame:
    """Every lesion of a cohort with its expert `rim` label (NA: unlabelled), size, exclusion and
    the training-free `shell_minus_core` QSM contrast."""
    tables = []
    for files in discover_cohort(cohort).sessions:
        data = load_session(files, lesions)
        features = lesion_features(data.qsm, data.instances)[["index", TRAINING_FREE]]
        table = data.lesions[["index", "voxels", "volume_mm3", "rim", "excluded"]].merge(features, on="index")
        tables.append(table.assign(participant_id=files.participant_id, session_id=files.session_id or ""))
    return pd.concat(tables, ignore_index=True)


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Predicted lesions with their expert labels, one row per lesion of both tables; raises when a
    lesion is in one table only (predictions of another cohort, or a changed lesion map)."""
    joined = predictions[KEYS + ["probability", "rim_pred", "excluded"]].merge(
        labels[KEYS + ["rim", "volume_mm3"]], on=KEYS, how="outer", validate="one_to_one", indicator=True)
    unmatched = joined[joined["_merge"] != "both"]
    if len(unmatched):
        first = unmatched.iloc[0]
        side = "predictions" if first["_merge"] == "left_only" else "the test cohort's labels"
        raise ValueError(f"{len(unmatched)} lesion(s) only in {side}, e.g. {first['participant_id']} "
                         f"{first['session_id']} lesion {first['index']}")
    return joined.drop(columns="_merge")


def scored(table: pd.DataFrame, score_column: str) -> pd.DataFrame:
    """The rows that count: not excluded, labelled, with a finite score."""
    keep = (table["excluded"].fillna("") == "") & table["rim"].notna() & np.isfinite(table[score_column])
    return table[keep]


def transfer_metrics(rim: np.ndarray, score: np.ndarray, volume: np.ndarray) -> dict[str, float | int | None]:
    """ROC-AUC, PR-AUC, counts, and the Spearman correlation of score with volume among Rim- lesions
    (AUCs are None without both classes, the correlation with fewer than three Rim- lesions)."""
    rim = np.asarray(rim, dtype=int)
    score = np.asarray(score, dtype=float)
    volume = np.asarray(volume, dtype=float)
    both = 0 < rim.sum() < len(rim)
    negative = rim == 0
    rho, p = spearmanr(score[negative], volume[negative]) if negative.sum() >= 3 else (np.nan, np.nan)
    return {
        "n_lesions": len(rim),
        "n_rim_pos": int(rim.sum()),
        "roc_auc": float(roc_auc_score(rim, score)) if both else None,
        "pr_auc": float(average_precision_score(rim, score)) if both else None,
        "spearman_volume_rim_neg": None if np.isnan(rho) else float(rho),
        "spearman_p": None if np.isnan(p) else float(p),
    }


def operating_point(rim: np.ndarray, decision: np.ndarray, probability: np.ndarray) -> dict[str, float | None]:
    """At the model's own threshold (fitted on its validation split): F1, sensitivity and specificity of
    its Rim+ decisions, and the Brier score of its probabilities (the calibration the threshold and an
    expected Rim+ count rely on); None where a class is missing."""
    rim = np.asarray(rim, dtype=int)
    decision = np.asarray(decision, dtype=int)
    both = 0 < rim.sum() < len(rim)
    return {
        "f1": float(f1_score(rim, decision, zero_division=0)) if both else None,
        "sensitivity": float(recall_score(rim, decision)) if both else None,
        "specificity": float(recall_score(rim, decision, pos_label=0)) if both else None,
        "brier": float(brier_score_loss(rim, np.asarray(probability, dtype=float))) if len(rim) else None,
    }


def run_prlkit(arguments: list[str], threads: int, log: Path) -> dict:
    """Run `python -m prlkit --threads N ...` with the prlkit this script imported (OMP_NUM_THREADS=N
    too); stdout and stderr go to `log`. Returns the command, wall time and exit status."""
    command = [sys.executable, "-m", "prlkit", "--threads", str(threads), *arguments]
    env = {**os.environ, "PYTHONPATH": str(Path(prlkit.__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        status = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    return {"command": shlex.join(command), "wall_s": round(time.perf_counter() - start, 1), "returncode": status}


def run_step(name: str, arguments: list[str], threads: int, folder: Path) -> dict:
    """One prlkit call logged to `folder/<name>.log`, with the load average before and after; on
    failure the record holds the log's tail under `error`."""
    folder.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    record = run_prlkit(arguments, threads, folder / f"{name}.log")
    record.update(load_before=load_before, load_after=os.getloadavg())
    if record["returncode"] != 0:
        record["error"] = (folder / f"{name}.log").read_text(encoding="utf-8")[-2000:]
    return record


def train_method(method: str, args: argparse.Namespace) -> dict:
    """`prlkit train` of `method` on all of the training cohort into DIR/<method>/model."""
    config = ["--config", str(args.config)] if args.config else ["--profile", args.profile]
    arguments = ["train", str(args.train), "--out", str(args.out / method / "model"), "--method", method, *config,
                 "--seed", str(args.seed), "--cache-dir", str(args.cache_dir or args.out / "cache"), "--no-progress"]
    return run_step("train", arguments, args.threads, args.out / method)


def predict_cohort(method: str, model: Path, test: Path, args: argparse.Namespace) -> tuple[dict, pd.DataFrame | None]:
    """`prlkit predict` of a test cohort with `model` into DIR/<method>/pred-<cohort name>;
    returns the run record and the predicted lesion tables (None when it failed)."""
    folder = args.out / method / f"pred-{test.name}"
    arguments = ["predict", str(test), "--model", str(model), "--out", str(folder), "--no-progress"]
    record = run_step("predict", arguments, args.threads, folder)
    return record, None if "error" in record else read_predictions(folder)


def machine() -> dict:
    """CPU model, core count, OS, Python, torch and prlkit versions, and where prlkit was imported from."""
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    cpu = names[0] if names else platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "prlkit": prlkit.__version__,
            "prlkit_source": str(Path(prlkit.__file__).resolve().parent)}


def source_revision() -> dict[str, str | bool | None]:
    """The git commit of the imported prlkit's checkout and whether its files differ from it (None outside git)."""
    source = str(Path(prlkit.__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", source, "status", "--porcelain", "--", "."], capture_output=True,
                                 text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "prlkit_modified": None}
    return {"commit": commit, "prlkit_modified": bool(changes)}


def markdown_table(rows: list[dict]) -> str:
    """One line per (test cohort, method): AUCs, counts, Spearman(score, volume | Rim-), train / predict seconds."""
    def number(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = ["| test cohort | method | ROC-AUC | PR-AUC | lesions (Rim+) | Spearman score-volume, Rim- | train s "
             "| predict s |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        seconds = [str(row[step]) if row.get(step) is not None else "-" for step in ("train_s", "predict_s")]
        lines.append(f"| {row['test']} | {row['method']} | {number(row['roc_auc'])} | {number(row['pr_auc'])} | "
                     f"{row['n_lesions']} ({row['n_rim_pos']}) | {number(row['spearman_volume_rim_neg'], 2)} | "
                     f"{seconds[0]} | {seconds[1]} |")
    return "\n".join(lines)


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="training cohort (BIDS folder or manifest)")
    parser.add_argument("--test", type=Path, nargs="+", required=True,
                        help="test cohort(s) with expert rim labels (folder names must differ)")
    parser.add_argument("--methods", default="frodo,aprl", help="comma-separated registered methods ('' for none)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--profile", default="quick", help="prlkit settings profile (default quick)")
    parser.add_argument("--config", type=Path, help="prlkit config file (overrides --profile)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per prlkit call (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation split and training")
    parser.add_argument("--cache-dir", type=Path, help="patch cache of the training runs (default DIR/cache)")
    parser.add_argument("--trained", action="append", default=[], metavar="NAME=MODEL",
                        help="also score an already trained model folder under NAME (no training; repeatable)")
    args = parser.parse_args()
    if len({test.name for test in args.test}) < len(args.test):
        parser.error("--test: the cohorts' folder names must differ (they name the prediction folders)")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = {"command": shlex.join([sys.executable, *sys.argv]), "machine": machine(), **source_revision(),
              "load_before": os.getloadavg(), "train_cohort": str(args.train), "methods": {}, "tests": {}}
    lesions = (load_config(args.config) if args.config else get_profile(args.profile)).lesions
    labels = {test.name: expert_lesions(test, lesions) for test in args.test}
    rows = []
    for test in args.test:
        table = scored(labels[test.name], TRAINING_FREE)
        result["tests"][test.name] = {"path": str(test), TRAINING_FREE: transfer_metrics(
            table["rim"], table[TRAINING_FREE], table["volume_mm3"])}
    to_train = [m.strip() for m in args.methods.split(",") if m.strip()]
    models = {method: args.out / method / "model" for method in to_train}
    models |= {name: Path(folder) for name, folder in (spec.split("=", 1) for spec in args.trained)}
    for method, model in models.items():
        result["methods"][method] = train = train_method(method, args) if method in to_train else {"model": str(model)}
        print(f"{method} train: {train.get('error', 'done')}", file=sys.stderr, flush=True)
        for test in args.test if "error" not in train else []:
            record, predictions = predict_cohort(method, model, test, args)
            if predictions is not None:
                table = scored(join_labels(predictions, labels[test.name]), "probability")
                record.update(transfer_metrics(table["rim"], table["probability"], table["volume_mm3"]),
                              **operating_point(table["rim"], table["rim_pred"], table["probability"]))
                rows.append({"test": test.name, "method": method, "train_s": train.get("wall_s"),
                             "predict_s": record["wall_s"], **record})
            result["tests"][test.name][method] = record
            print(f"{method} predict {test.name}: {record.get('error', 'done')}", file=sys.stderr, flush=True)
    rows += [{"test": name, "method": TRAINING_FREE, **test[TRAINING_FREE]} for name, test in result["tests"].items()]
    result.update(load_after=os.getloadavg(), wall_s=round(time.perf_counter() - started, 1),
                  table=markdown_table(rows))
    (args.out / "transfer.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(result["table"])


if __name__ == "__main__":
    main()
