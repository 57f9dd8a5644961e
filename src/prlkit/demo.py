"""The end-to-end demo: simulate a cohort, cross-validate the main method, prlkit's pretrained variant and a fast
baseline, predict a new subject with the main method's fold models, report."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from prlkit.atomic import write_text_atomic
from prlkit.config import Config, get_profile
from prlkit.crossval import run_cross_validation
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.predict import load_ensemble, predict_sessions
from prlkit.report.pages import write_report
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile as synth_profile

log = logging.getLogger("prlkit")

# The `quick` profile with fewer epochs, so five folds fit in a few minutes on one thread of a 2-core CPU.
DEMO_EPOCHS = {"pretrain": 3, "finetune": 12, "variant": 4}
# the main method, prlkit's variant (shipped pretrained weights, fine-tuned) and the fast baseline (random forest)
DEMO_METHODS = ["frodo", "frodo_simpretrained", "aprl"]
NEW_SUBJECT_SEED_OFFSET = 1000  # the "new patient" comes from another seed: never seen in training
TIMING_FILE = "demo_timing.json"  # every run of the demo in its folder: start (epoch seconds) and duration


def demo_config() -> Config:
    """`quick` with fewer epochs (the variant fine-tunes its shipped weights for a fixed few)."""
    quick = get_profile("quick")
    variant = DEMO_EPOCHS["variant"]
    return dataclasses.replace(
        quick,
        pretrain=dataclasses.replace(quick.pretrain, max_epochs=DEMO_EPOCHS["pretrain"]),
        finetune=dataclasses.replace(quick.finetune, max_epochs=DEMO_EPOCHS["finetune"]),
        methods={"frodo_simpretrained": {"finetune": {"max_epochs": variant, "patience": variant}}},
    )


def _simulate_once(folder: Path, subjects: int, seed: int, synth: str, progress: bool) -> None:
    if not (folder / "participants.tsv").is_file():
        log.info("simulating %d participant(s) into %s", subjects, folder)
        write_cohort(folder, subjects, seed, synth_profile(synth), jobs=2, preview=True, progress=progress)


def run_demo(out: Path, subjects: int, seed: int, device: torch.device, synth: str = "default",
             progress: bool = True) -> dict:
    """Simulate (once), five-fold cv of the main method and APRL, frodo fold-ensemble prediction of a new subject,
    both HTML reports and `demo_results.md`. A rerun reuses the data and the finished folds."""
    out.mkdir(parents=True, exist_ok=True)
    earlier = close_interrupted(_read_runs(out / TIMING_FILE), _last_write(out))
    run = {"started": time.time(), "seconds": None}
    _write_runs(out / TIMING_FILE, earlier + [run])  # stays without seconds if this run is interrupted
    started = time.perf_counter()
    data, new_subject = out / "data", out / "new_subject"
    _simulate_once(data, subjects, seed, synth, progress)
    _simulate_once(new_subject, 1, seed + NEW_SUBJECT_SEED_OFFSET, synth, progress)
    config = demo_config()
    patch_set = build_patch_set(discover_cohort(data), config, cache_dir=out / "cache", progress=progress)
    results = run_cross_validation(patch_set, DEMO_METHODS, "frodo", config, out / "cv", device, progress=progress)
    cv_report = write_report(out / "cv")
    subjects_table = predict_sessions(discover_cohort(new_subject).sessions, load_ensemble(out / "cv", "frodo"),
                                      out / "predictions", device, progress)
    predict_report = write_report(out / "predictions", dataset=new_subject)
    runs = earlier + [run | {"seconds": time.perf_counter() - started}]
    _write_runs(out / TIMING_FILE, runs)
    lines = [
        "# prlkit demo", "",
        f"{subjects} simulated participants, five-fold cross-validation of the main method (`quick` profile, "
        f"at most {DEMO_EPOCHS['pretrain']} pretraining epochs, {DEMO_EPOCHS['finetune']} fine-tuning epochs with the "
        f"weights of the last {demo_config().finetune.averaged_epochs} averaged), of prlkit's variant "
        f"`frodo_simpretrained` (weights pretrained on simulated lesions, fine-tuned {DEMO_EPOCHS['variant']} epochs) "
        f"and of APRL (radiomics + random forest), then the main method's five fold models predict a new simulated "
        f"subject; {timing_text(runs)}.",
        "", f"The cohort holds {int(patch_set.labelled()['rim'].sum())} Rim+ lesions; what the network can learn "
        "from that many, against hand-crafted features: README, \"How much data the main method needs\".", "",
        (out / "cv" / "results.md").read_text(), "## New subject (fold ensemble)", "", "```",
        subjects_table.to_string(index=False), "```", "",
        f"Reports: {cv_report} and {predict_report}",
    ]
    write_text_atomic(out / "demo_results.md", "\n".join(lines) + "\n")
    return {"seconds": total_seconds(runs), "results": results, "cv_report": cv_report,
            "predict_report": predict_report}


def close_interrupted(runs: list[dict], last_write: float) -> list[dict]:
    """Runs that never recorded their duration (interrupted) last until the last file write in the demo
    folder (`last_write`, epoch seconds), the last sign of their work."""
    return [run if run["seconds"] is not None else run | {"seconds": max(0.0, last_write - run["started"])}
            for run in runs]


def total_seconds(runs: list[dict]) -> float:
    """The demo's time over all its runs in one folder."""
    return float(sum(run["seconds"] for run in runs))


def timing_text(runs: list[dict]) -> str:
    """How long the demo took, saying when it was resumed (then the last run alone is not the total)."""
    total = f"{total_seconds(runs):.0f} s in all"
    if len(runs) == 1:
        return total
    return f"{total}, over {len(runs)} runs (resumed; the last run took {runs[-1]['seconds']:.0f} s)"


def _read_runs(path: Path) -> list[dict]:
    return json.loads(path.read_text())["runs"] if path.is_file() else []


def _write_runs(path: Path, runs: list[dict]) -> None:
    write_text_atomic(path, json.dumps({"runs": runs}, indent=1) + "\n")


def _last_write(folder: Path) -> float:
    """The latest modification time (epoch seconds) of any file under `folder` but the timing file."""
    return max((path.stat().st_mtime for path in folder.rglob("*") if path.is_file() and path.name != TIMING_FILE),
               default=0.0)
