"""Task descriptions: what a head predicts, its loss, and which metrics (with their direction) it reports."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Direction of every metric the package reports: True if higher is better. Drives Δm signs and model selection.
HIGHER_IS_BETTER = {"acc": True, "loss": False}


@dataclass(frozen=True)
class Task:
    name: str
    kind: str            # "classification" (the only kind of this release's datasets)
    n_out: int           # classes
    primary: str = "acc"  # metric used for model selection and Δm

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss over the batch (a per-environment risk R_t^e when the batch is one environment)."""
        if self.kind == "classification":
            return F.cross_entropy(logits, y)
        raise ValueError(f"task {self.name}: unknown kind {self.kind!r}")
