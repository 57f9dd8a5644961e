"""The end-to-end demo: simulate a cohort, train on some participants, predict and score the others."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prlkit.atomic import write_text_atomic
from prlkit.config import Config, get_profile, save_config
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.eval.folds import labelled_lesions, make_folds, split_development
from prlkit.eval.metrics import lesion_metrics
from prlkit.methods.frodo import train_frodo
from prlkit.predict import Ensemble, predict_sessions
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile as synth_profile

log = logging.getLogger("prlkit")

# The `quick` profile, shortened further so the whole demo takes minutes on a 2-core laptop.
DEMO_EPOCHS = {"pretrain": 4, "finetune": 15}


def demo_config() -> Config:
    """`quick` with fewer epochs."""
    quick = get_profile("quick")
    return dataclasses.replace(
        quick,
        profile="quick",
        pretrain=dataclasses.replace(quick.pretrain, max_epochs=DEMO_EPOCHS["pretrain"]),
        finetune=dataclasses.replace(quick.finetune, max_epochs=DEMO_EPOCHS["finetune"]),
    )


def run_demo(out: Path, subjects: int, seed: int, device: torch.device, synth: str = "default",
             progress: bool = True) -> dict:  # fmt: skip
    """Simulate (once), hold out a quarter of the participants, train on the rest, predict and score them."""
    started = time.perf_counter()
    data = out / "data"
    if not (data / "participants.tsv").is_file():
        log.info("simulating %d participants into %s", subjects, data)
        write_cohort(data, subjects, seed, synth_profile(synth), jobs=2, preview=True, progress=progress)
    config = demo_config()
    cohort = discover_cohort(data)
    patch_set = build_patch_set(cohort, config, cache_dir=out / "cache", progress=progress)
    folds = make_folds(patch_set.lesions, n_folds=4, seed=seed)
    held_out = set(folds.loc[folds["fold"] == 0, "participant_id"])
    lesions = labelled_lesions(patch_set.lesions)
    development = lesions[~lesions["participant_id"].isin(held_out)]
    train_index, val_index = split_development(development, val_fraction=config.split.val_fraction, seed=seed)
    log.info("training on %d participants, testing on %d held-out participants",
             development["participant_id"].nunique(), len(held_out))  # fmt: skip
    model, _ = train_frodo(patch_set, train_index, val_index, config, out / "model" / "runs", device, progress=progress)
    model.save(out / "model")
    save_config(config, out / "model" / "config.yaml")
    test_sessions = [s for s in cohort.sessions if s.participant_id in held_out]
    subjects_table = predict_sessions(test_sessions, Ensemble([model]), out / "predictions", device, progress)
    scored = _score_held_out(out / "predictions", patch_set.lesions, held_out, model.threshold)
    report = {"seconds": round(time.perf_counter() - started, 1), "threshold": model.threshold,
              "held_out_participants": len(held_out), **scored}  # fmt: skip
    write_text_atomic(out / "demo_results.md", _markdown(report, subjects_table))
    return report


def _score_held_out(predictions: Path, lesions: pd.DataFrame, held_out: set[str], threshold: float) -> dict:
    """Held-out lesions' predicted probability against their expert label."""
    rows = []
    for participant in sorted(held_out):
        table = pd.read_csv(predictions / "derivatives" / "prlkit" / participant / "anat" / f"{participant}_lesions.tsv",
                            sep="\t", keep_default_na=False, na_values={"probability": [""]})  # fmt: skip
        truth = lesions[lesions["participant_id"] == participant].set_index("index")["rim"]
        table = table[table["excluded"] == ""].assign(label=lambda t: t["index"].map(truth))
        rows.append(table[table["label"].notna()])
    scored = pd.concat(rows)
    metrics = lesion_metrics(scored["label"].astype(int).to_numpy(), scored["probability"].to_numpy(), threshold)
    return {k: (float(v) if isinstance(v, (float, np.floating)) else int(v)) for k, v in metrics.items()}


def _markdown(report: dict, subjects: pd.DataFrame) -> str:
    keys = ["n_lesions", "n_rim", "roc_auc", "pr_auc", "proc_auc", "f1", "sensitivity", "specificity", "ppv", "npv"]
    lines = ["# prlkit demo", "", f"Held-out participants: {report['held_out_participants']}; "
             f"threshold {report['threshold']:.2f} (chosen on validation); {report['seconds']:.0f} s in all.", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
             "| " + " | ".join(f"{report[k]:.3f}" if isinstance(report[k], float) else str(report[k]) for k in keys) + " |",
             "", "## Held-out participants", "", "```", subjects.to_string(index=False), "```"]  # fmt: skip
    return "\n".join(lines) + "\n"
