"""Out-of-fold prediction tables: their columns, reading them back, pairing two methods lesion by lesion.

Pure tables (no torch, no methods): `prlkit compare` and the statistics read them without training anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PREDICTION_COLUMNS = [
    "participant_id", "session_id", "index", "lesion_row", "fold", "method",
    "probability", "label", "threshold", "decision",
]



def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions TSV written by the cross-validation harness (`prlkit.crossval`)."""
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str}, keep_default_na=False)



def paired_by_lesion(oof: pd.DataFrame, method_a: str, method_b: str
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and decisions of two methods on the same lesions, aligned by lesion row."""
    a = oof[oof["method"] == method_a].set_index("lesion_row").sort_index()
    b = oof[oof["method"] == method_b].set_index("lesion_row").sort_index()
    if not a.index.equals(b.index):
        raise ValueError(f"{method_a} and {method_b} were not evaluated on the same lesions")
    return a["label"].to_numpy(), a["probability"].to_numpy(), b["probability"].to_numpy(), \
        a["decision"].to_numpy(), b["decision"].to_numpy()
