"""Weight interpolation between a fine-tuned network and its start: does the middle transfer better?

`frodo_simpretrained` fine-tunes shipped weights on the user's cohort, and on several held-out cohorts the
shipped weights alone (no fine-tuning) scored as well or better. Averaging the weights of the start and the
fine-tuned network (WiSE-FT, Wortsman et al., CVPR 2022: robust fine-tuning of zero-shot models) keeps part
of both. Per model folder, test cohort and mixing weight `alpha` (0 = the fine-tuned network as saved,
1 = its start, `pretrain.weights`): the scored lesions' ROC-AUC / PR-AUC and the Spearman correlation of the
score with lesion volume among Rim- lesions, logits averaged over the model's own test-time symmetries.
Uncalibrated scores (calibration is increasing, so the AUCs are the same). Single networks only.

Usage: PYTHONPATH=src python benchmarks/weight_interpolation.py --models NAME=MODEL [...] --test COHORT [...]
       [--alphas 0 0.25 0.5 0.75 1] [--cache-dir CACHE] [--threads 1] [--out FILE.json]
"""

from __future__ import annotations

import copy
import functools
import sys
import time
from pathlib import Path

import torch

from prlkit.methods.frodo import load_network_weights
from prlkit.models.frodo import FrodoNet
from prlkit.weights import resolve_weights


def interpolated(net: torch.nn.Module, start: dict[str, torch.Tensor], alpha: float) -> torch.nn.Module:
    """A copy of `net` whose floating-point tensors are (1 - alpha) * its own + alpha * `start`'s."""
    mixed = copy.deepcopy(net)
    state = mixed.state_dict()
    mixed.load_state_dict({key: torch.lerp(value, start[key].to(value.dtype), alpha)
                           if value.is_floating_point() else value for key, value in state.items()})
    return mixed.eval()


def start_state(model) -> dict[str, torch.Tensor]:
    """The weights fine-tuning of `model` started from (its `pretrain.weights`), keyed like its network."""
    config = model.config
    if not config.pretrain.weights or isinstance(config.pretrain.weights, tuple):
        raise SystemExit(f"{model.method}: a single network fine-tuned from pretrain.weights is needed")
    start = FrodoNet(config.frodo)
    load_network_weights(start, resolve_weights(config.pretrain.weights, config.frodo, config.susceptibility))
    return start.state_dict()


def main() -> None:
    """Command line: see the module docstring."""
    from symmetry_averaging import averaged_logits, model_parser, saved_network, score_cohorts, write_result

    parser = model_parser(__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, rows = time.perf_counter(), []
    print("| model | test cohort | lesions (Rim+) | " + " | ".join(f"alpha {a:g}" for a in args.alphas) + " |\n|"
          + "---|" * (3 + len(args.alphas)))
    for name, folder in args.models:
        model, net = saved_network(folder)
        if not isinstance(net, FrodoNet):
            raise SystemExit(f"{folder}: a single frodo network is needed, not {type(net).__name__}")
        start, symmetries = start_state(model), model.config.frodo.test_time_symmetries
        scorers = {f"alpha={alpha:g}": functools.partial(averaged_logits, interpolated(net, start, alpha),
                                                          symmetries=symmetries) for alpha in args.alphas}
        rows += score_cohorts(name, model.config, scorers, args.test, args.cache_dir)
    if args.out:
        write_result(args.out, rows, started)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
