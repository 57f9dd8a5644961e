"""How much data the main method needs: per-epoch held-out ROC/PR-AUC of the fine-tuning stage.

A diagnostic, not a result: the held-out participants are scored after every epoch to draw the
learning curve, so the curve must not be used to pick an epoch (``prlkit cv`` does the honest
protocol). The cohort's participants are split once (seeded, stratified by Rim+ burden) into a
training part and a held-out part; the network is the configured profile's, trained by the
shared loop with the method's fine-tuning stage (BCE + SupCon, class-balanced batches, cube
symmetries), without pretraining and without early stopping.

Run: ``PYTHONPATH=src python benchmarks/learning_curve.py COHORT [--epochs 15] [--profile quick | --config FILE]
[--norm group|batch] [--held-out-folds 3] [--json FILE]``
(make a cohort with ``prlkit simulate COHORT --subjects 90 --seed 11``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from prlkit.config import get_profile, load_config
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.eval.folds import labelled_lesions, make_folds
from prlkit.eval.metrics import pr_auc, roc_auc
from prlkit.methods.splits import lesion_split
from prlkit.models.frodo import FrodoNet
from prlkit.train.augment import random_symmetries
from prlkit.train.loop import fit
from prlkit.train.stages import SupervisedFinetuning, predict_probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--config", type=Path, help="a prlkit config file (a lever to measure); replaces --profile")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out-folds", type=int, default=3, help="1/N of the participants are held out")
    parser.add_argument("--norm", choices=("group", "batch"), help="override the profile's normalisation layers")
    parser.add_argument("--json", type=Path, help="write the curve here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config) if args.config else get_profile(args.profile)
    if args.norm:
        config = dataclasses.replace(config, frodo=dataclasses.replace(config.frodo, norm=args.norm))
    patch_set = build_patch_set(discover_cohort(args.cohort), config, progress=False)
    labelled = labelled_lesions(patch_set.lesions)
    folds = make_folds(labelled, n_folds=args.held_out_folds, seed=args.seed)
    held_out = labelled["participant_id"].isin(folds.loc[folds["fold"] == 0, "participant_id"]).to_numpy()
    train = lesion_split(patch_set, labelled.index[~held_out], 2)
    test = lesion_split(patch_set, labelled.index[held_out], 2)
    print(f"{args.cohort}: train {len(train.y)} lesions ({int(train.y.sum())} Rim+), "
          f"held out {len(test.y)} ({int(test.y.sum())} Rim+), profile {args.profile}, norm {config.frodo.norm}")
    finetune = dataclasses.replace(config.finetune, max_epochs=args.epochs, patience=args.epochs, seed=args.seed)
    net = FrodoNet(config.frodo, seed=args.seed)
    stage = SupervisedFinetuning(net, train.y.numpy(), finetune.batch_size, finetune.supcon_temperature)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = fit(stage, train, test, finetune, Path(run_dir), torch.device("cpu"), augment=random_symmetries,
                     progress=False)
    seconds = time.perf_counter() - start
    probabilities = predict_probabilities(net, test.x, torch.device("cpu"))  # weights of the best held-out epoch
    curve = [{"epoch": row["epoch"], "train_loss": round(row["train_loss"], 4),
              "held_out_pr_auc": round(row["val_pr_auc"], 4)} for row in result.history]
    for row in curve:
        print(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.3f}  "
              f"held-out PR-AUC {row['held_out_pr_auc']:.3f}")
    labels = test.y.numpy()
    summary = {"cohort": str(args.cohort), "norm": config.frodo.norm, "train_lesions": len(train.y),
               "train_rim": int(train.y.sum()),
               "held_out_lesions": len(labels), "held_out_prevalence": float(labels.mean()),
               "best_epoch": result.best_epoch, "best_epoch_roc_auc": roc_auc(labels, probabilities),
               "best_epoch_pr_auc": pr_auc(labels, probabilities), "seconds": round(seconds, 1), "curve": curve}
    print(f"prevalence {labels.mean():.3f}; best epoch {result.best_epoch} (chosen on the held-out set: optimistic): "
          f"ROC-AUC {summary['best_epoch_roc_auc']:.3f}, PR-AUC {summary['best_epoch_pr_auc']:.3f}; {seconds:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
