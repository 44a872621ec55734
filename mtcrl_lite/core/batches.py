"""One training step's per-environment batches {env: (x, {task: y})}, pooled. Imports torch only."""

from __future__ import annotations

import torch


def concat(batches: dict):
    """One step's {env: (x, {task: y})} batches as one (x, {task: y}), environments in their order."""
    xs, ys = zip(*batches.values())
    return torch.cat(xs), {t: torch.cat([y[t] for y in ys]) for t in ys[0]}


def env_index(batches: dict, device=None) -> torch.Tensor:
    """(B,) the environment of every sample of one step's {env: (x, y)} batches once concatenated in their order."""
    return torch.cat(
        [torch.full((len(b[0]),), i, dtype=torch.long, device=device) for i, b in enumerate(batches.values())]
    )
