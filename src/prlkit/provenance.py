"""What made a result: the software versions, the model folders and the input dataset.

`model.json` records `software_versions()` (`prlkit.modelfile.save_model`); a prediction's
dataset_description.json records them too, with `model_provenance` of every model used and
`source_dataset` of the input (`prlkit.predict.write_dataset_description`).
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import prlkit

LIBRARIES = ("torch", "monai", "scikit-learn", "numpy")  # distribution names of the libraries that shape the numbers


def software_versions() -> dict[str, str]:
    """Versions of prlkit, Python and LIBRARIES (read from the installed distributions, nothing imported)."""
    versions = {"prlkit": prlkit.__version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:  # only a broken environment; the record says so instead of failing
            versions[name] = "not installed"
    return versions


def model_provenance(folder: Path) -> dict[str, Any]:
    """A model folder as a prediction records it: where, which method and network, which prlkit version trained it,
    and a digest of its settings (model_config and config: equal digests mean equally configured training)."""
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    settings = json.dumps({"model_config": meta["model_config"], "config": meta["config"]}, sort_keys=True)
    return {"Path": str(folder.resolve()), "Method": meta["method"], "Network": meta.get("network", meta["method"]),
            "PrlkitVersion": meta["prlkit_version"], "ConfigDigest": hashlib.sha256(settings.encode()).hexdigest()[:16]}


def source_dataset(path: Path) -> dict[str, str]:
    """The input dataset as BIDS SourceDatasets names it: its file URL, and the DOI and Name of its
    dataset_description.json when it has them (optional in prlkit's input, so an unreadable one adds nothing)."""
    entry = {"URL": Path(path).resolve().as_uri()}
    try:
        description = json.loads((Path(path) / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a manifest .csv, or a folder without a readable description
        return entry
    if not isinstance(description, dict):
        return entry
    named = {"DOI": description.get("DatasetDOI"), "Name": description.get("Name")}
    return entry | {key: value for key, value in named.items() if isinstance(value, str) and value}
