"""Network weights shipped with prlkit, each with a JSON provenance file beside it.

`frodo_quick_simulated.safetensors`: the `quick` frodo network with GroupNorm, trained on a
domain-randomised simulated cohort (`prlkit simulate --synth-profile randomised`, made by
`benchmarks/pretrain_simulated.py`); `frodo_quick_simulated_phase.safetensors`: the same network
trained on the same cohort's phase images. `pretrain: {weights: simulated}` starts fine-tuning from
the file of the run's `susceptibility` input (the `frodo_simpretrained` method until 2026-12-08).
`frodo_quick_simulated_core_balanced[_phase].safetensors` (`pretrain.weights: simulated_core_balanced`):
the same recipe on `--synth-profile randomised_core_balanced`, whose Rim+ and plain Rim- lesion cores are
drawn alike, so the weights cannot have learned the simulator's dark-core cue (method
`frodo_simpretrained_pair` starts one network from each). `frodo_quick_simulated_anatomy[_phase].safetensors`
(`pretrain.weights: simulated_anatomy`): the `simulated` file fine-tuned further, with method
`frodo_simpretrained`'s recipe, on simulated participants drawn on a real brain (the MNI152 template;
`pretrain_simulated.py --anatomy`), a brain in none of prlkit's test cohorts: method `frodo_simpretrained`'s
start since 2026-12-08. Each JSON says how its file was
made: the command, the generator settings, the prlkit version and commit, its SHA-256, the susceptibility input
and the frodo settings it needs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from prlkit.errors import PrlkitError

HERE = Path(__file__).resolve().parent
# the shipped file per susceptibility input (config `susceptibility`)
SIMULATED_QUICK = {"qsm": HERE / "frodo_quick_simulated.safetensors",
                   "phase": HERE / "frodo_quick_simulated_phase.safetensors"}
# the `pretrain.weights` values that name shipped files, and the generator profile each was pretrained on
SHIPPED_WEIGHTS = {
    "simulated": SIMULATED_QUICK,
    "simulated_core_balanced": {"qsm": HERE / "frodo_quick_simulated_core_balanced.safetensors",
                                "phase": HERE / "frodo_quick_simulated_core_balanced_phase.safetensors"},
    "simulated_anatomy": {"qsm": HERE / "frodo_quick_simulated_anatomy.safetensors",
                          "phase": HERE / "frodo_quick_simulated_anatomy_phase.safetensors"},
}
PRETRAINING_PROFILES = {"simulated": "randomised", "simulated_core_balanced": "randomised_core_balanced",
                        "simulated_anatomy": "randomised"}


def read_provenance(weights: Path) -> dict:
    """The JSON beside a weights file ({} when there is none)."""
    provenance = Path(weights).with_suffix(".json")
    return json.loads(provenance.read_text(encoding="utf-8")) if provenance.is_file() else {}


def resolve_weights(source: str, frodo_config, susceptibility: str = "qsm") -> Path:
    """The file `pretrain.weights` names: a path, or shipped weights (`SHIPPED_WEIGHTS`) for the `susceptibility`
    input, whose frodo settings `frodo_config` must match (a one-line error names the settings they need)."""
    if source not in SHIPPED_WEIGHTS:
        return Path(source)
    weights = SHIPPED_WEIGHTS[source][susceptibility]
    provenance = read_provenance(weights)
    if not weights.is_file() or "frodo" not in provenance:
        raise PrlkitError(f"pretrain.weights: {source}: {weights} or its JSON is missing from this install")
    if provenance.get("susceptibility", "qsm") != susceptibility:
        raise PrlkitError(f"pretrain.weights: {source}: {weights} was trained on {provenance['susceptibility']} "
                          f"input, not {susceptibility}")
    differing = {key: value for key, value in provenance["frodo"].items() if asdict(frodo_config).get(key) != value}
    if differing:
        raise PrlkitError(f"pretrain.weights: {source}: the shipped weights need frodo settings {differing} "
                          "(the quick profile's network with norm: group, as method frodo_simpretrained sets)")
    return weights
