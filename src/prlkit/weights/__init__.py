"""Network weights shipped with prlkit, each with a JSON provenance file beside it.

`frodo_quick_simulated.safetensors`: the `quick` frodo network with GroupNorm, trained on a
domain-randomised simulated cohort (`prlkit simulate --synth-profile randomised`, made by
`benchmarks/pretrain_simulated.py`). `pretrain: {weights: simulated}` starts fine-tuning from it
(the `frodo_simpretrained` method). The JSON says how the file was made: the command, the
generator settings, the prlkit version and commit, its SHA-256 and the frodo settings it needs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from prlkit.errors import PrlkitError

SHIPPED = "simulated"  # the `pretrain.weights` value that names the shipped file
SIMULATED_QUICK = Path(__file__).resolve().parent / "frodo_quick_simulated.safetensors"


def read_provenance(weights: Path) -> dict:
    """The JSON beside a weights file ({} when there is none)."""
    provenance = Path(weights).with_suffix(".json")
    return json.loads(provenance.read_text(encoding="utf-8")) if provenance.is_file() else {}


def resolve_weights(source: str, frodo_config) -> Path:
    """The file `pretrain.weights` names: a path, or the shipped weights, whose frodo settings
    `frodo_config` must match (a one-line error names the settings they need)."""
    if source != SHIPPED:
        return Path(source)
    needed = read_provenance(SIMULATED_QUICK).get("frodo")
    if not SIMULATED_QUICK.is_file() or needed is None:
        raise PrlkitError(f"pretrain.weights: {SHIPPED}: {SIMULATED_QUICK} or its JSON is missing from this install")
    differing = {key: value for key, value in needed.items() if asdict(frodo_config).get(key) != value}
    if differing:
        raise PrlkitError(f"pretrain.weights: {SHIPPED}: the shipped weights need frodo settings {differing} "
                          "(the quick profile's network with norm: group, as method frodo_simpretrained sets)")
    return SIMULATED_QUICK
