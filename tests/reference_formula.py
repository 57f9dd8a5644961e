"""The deterministic weights and inputs of ../shared/reference/*.json (see its README), shared by the
weight-transfer tests of the main network and the baselines."""

from __future__ import annotations

import numpy as np
import torch


def formula_state(entries: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Tensor j (in the listed order), element i: 0.08 sin(0.731 i + 1.37 (j + 1)), plus 1 for 1-D '*.weight'
    (norm scales) and '*.running_var'; 'num_batches_tracked' stays 0. float64 arithmetic, stored as float32."""
    state = {}
    for j, (name, shape) in enumerate(entries):
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros(shape, dtype=torch.long)
            continue
        i = np.arange(int(np.prod(shape)), dtype=np.float64)
        w = 0.08 * np.sin(0.731 * i + 1.37 * (j + 1))
        if (len(shape) == 1 and name.endswith(".weight")) or name.endswith(".running_var"):
            w = 1.0 + w
        state[name] = torch.from_numpy(w.reshape(shape).astype(np.float32))
    return state


def reference_input(size: int, channels: int = 2) -> torch.Tensor:
    """(2, channels, S, S, S): P(S, b, c) = 0.5 + 0.4 sin(0.3z + 0.5b + c) cos(0.2y - 0.7c) sin(0.25x + 0.1b)."""
    z, y, x = np.meshgrid(*[np.arange(size, dtype=np.float64)] * 3, indexing="ij")

    def pattern(b: int, c: int) -> np.ndarray:
        return 0.5 + 0.4 * np.sin(0.3 * z + 0.5 * b + c) * np.cos(0.2 * y - 0.7 * c) * np.sin(0.25 * x + 0.1 * b)

    batch = np.stack([np.stack([pattern(b, c) for c in range(channels)]) for b in range(2)])
    return torch.from_numpy(batch.astype(np.float32))
