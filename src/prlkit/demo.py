"""The end-to-end demo: simulate a cohort, cross-validate the main method and a fast baseline, predict a new
subject with the main method's fold models, report."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from prlkit.atomic import write_text_atomic
from prlkit.config import Config, get_profile
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.predict import load_ensemble, predict_sessions
from prlkit.report.pages import write_report
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile as synth_profile
from prlkit.workflows import run_cross_validation

log = logging.getLogger("prlkit")

# The `quick` profile with fewer epochs, so five folds fit in about ten minutes on a 2-core laptop.
DEMO_EPOCHS = {"pretrain": 3, "finetune": 12}
DEMO_METHODS = ["frodo", "aprl"]  # the main method and the fast baseline (random forest: seconds per fold)
NEW_SUBJECT_SEED_OFFSET = 1000  # the "new patient" comes from another seed: never seen in training


def demo_config() -> Config:
    """`quick` with fewer epochs."""
    quick = get_profile("quick")
    return dataclasses.replace(
        quick,
        pretrain=dataclasses.replace(quick.pretrain, max_epochs=DEMO_EPOCHS["pretrain"]),
        finetune=dataclasses.replace(quick.finetune, max_epochs=DEMO_EPOCHS["finetune"]),
    )


def _simulate_once(folder: Path, subjects: int, seed: int, synth: str, progress: bool) -> None:
    if not (folder / "participants.tsv").is_file():
        log.info("simulating %d participant(s) into %s", subjects, folder)
        write_cohort(folder, subjects, seed, synth_profile(synth), jobs=2, preview=True, progress=progress)


def run_demo(out: Path, subjects: int, seed: int, device: torch.device, synth: str = "default",
             progress: bool = True) -> dict:  # fmt: skip
    """Simulate (once), five-fold cv of the main method and APRL, frodo fold-ensemble prediction of a new subject,
    both HTML reports and `demo_results.md`. A rerun reuses the data and the finished folds."""
    started = time.perf_counter()
    data, new_subject = out / "data", out / "new_subject"
    _simulate_once(data, subjects, seed, synth, progress)
    _simulate_once(new_subject, 1, seed + NEW_SUBJECT_SEED_OFFSET, synth, progress)
    config = demo_config()
    patch_set = build_patch_set(discover_cohort(data), config, cache_dir=out / "cache", progress=progress)
    results = run_cross_validation(patch_set, DEMO_METHODS, "frodo", config, out / "cv", device, progress=progress)
    cv_report = write_report(out / "cv")
    subjects_table = predict_sessions(discover_cohort(new_subject).sessions, load_ensemble(out / "cv", "frodo"),
                                      out / "predictions", device, progress)  # fmt: skip
    predict_report = write_report(out / "predictions", dataset=new_subject)
    seconds = time.perf_counter() - started
    lines = [
        "# prlkit demo", "",
        f"{subjects} simulated participants, five-fold cross-validation of the main method (`quick` profile, "
        f"{DEMO_EPOCHS['pretrain']} + {DEMO_EPOCHS['finetune']} epochs at most) and of APRL (radiomics + random "
        f"forest), then the main method's five fold models predict a new simulated subject; {seconds:.0f} s in all.",
        "", f"The cohort holds {int(patch_set.labelled()['rim'].sum())} Rim+ lesions; what the network can learn "
        "from that many, against hand-crafted features: README, \"How much data the main method needs\".", "",
        (out / "cv" / "results.md").read_text(), "## New subject (fold ensemble)", "", "```",
        subjects_table.to_string(index=False), "```", "",
        f"Reports: {cv_report} and {predict_report}",
    ]  # fmt: skip
    write_text_atomic(out / "demo_results.md", "\n".join(lines) + "\n")
    return {"seconds": seconds, "results": results, "cv_report": cv_report, "predict_report": predict_report}
