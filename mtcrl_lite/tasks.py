"""Task descriptions: what a head predicts, its loss, and which metrics (with their direction) it reports."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Direction of every metric the package reports: True if higher is better. Drives Δ signs and model selection.
HIGHER_IS_BETTER = {"acc": True, "loss": False, "auc": True, "rmse": False, "mae": False}
KINDS = ("classification", "regression")


@dataclass(frozen=True)
class Task:
    """kind 'classification': logits (B, n_out), integer labels; 'regression': output (B, n_out=1), float targets.

    Missing labels: a sample may carry no label for a task (MovieLens: a rating is labelled only for the genres of
    its movie). The label then is NaN (regression) or negative, e.g. -1 (classification). Such samples add nothing
    to the loss (`per_sample_loss` is 0 for them, with zero gradient), losses are means over labelled samples, and
    metrics are computed on the labelled samples only. With every sample labelled nothing changes.
    """
    name: str
    kind: str            # one of KINDS
    n_out: int           # classes, or 1 for a scalar regression
    primary: str = "acc"  # metric used for model selection and the paper's Δ

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: unknown kind {self.kind!r}; valid: {KINDS}")
        if self.primary not in HIGHER_IS_BETTER:
            raise ValueError(f"task {self.name}: unknown metric {self.primary!r}; valid: {sorted(HIGHER_IS_BETTER)}")

    def labelled(self, y: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the samples that carry a label: not NaN (regression), >= 0 (classification)."""
        if self.kind == "classification":
            return y >= 0
        return ~torch.isnan(y)

    def per_sample_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of every sample; exactly 0 (and no gradient) for samples without a label."""
        mask = self.labelled(y)
        if self.kind == "classification":
            return F.cross_entropy(out, y.clamp_min(0), reduction="none") * mask
        target = torch.where(mask, y.to(out.dtype), torch.zeros((), dtype=out.dtype, device=out.device))
        return (out.reshape(-1) - target) ** 2 * mask

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss over the labelled samples of the batch (a per-environment risk R_t^e when the batch is one
        environment); 0, still attached to the graph, when none is labelled."""
        return self.per_sample_loss(out, y).sum() / self.labelled(y).sum().clamp_min(1)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Metrics over a whole split (outputs of every sample at once), on its labelled samples."""
        mask = self.labelled(y)
        if not bool(mask.any()):
            raise ValueError(f"task {self.name}: no labelled sample in this split, so its metrics are undefined; "
                             f"enlarge the split (data config) so that every task is represented")
        out, y = out[mask], y[mask]
        m = {"loss": float(self.loss(out, y))}
        if self.kind == "classification":
            m["acc"] = float((out.argmax(1) == y).float().mean())
            if self.n_out == 2:
                m["auc"] = auc(out[:, 1] - out[:, 0], y)
        else:
            err = out.reshape(-1) - y.to(out.dtype)
            m["rmse"] = float(err.pow(2).mean().sqrt())
            m["mae"] = float(err.abs().mean())
        return m


def auc(score: torch.Tensor, y: torch.Tensor) -> float:
    """ROC AUC of `score` for binary labels y (ties count 1/2), via the Mann-Whitney rank statistic."""
    y = y.bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(score)
    _, inverse, counts = torch.unique_consecutive(score[order], return_inverse=True, return_counts=True)
    ranks = (counts.cumsum(0) - (counts - 1) / 2.0).double()[inverse]     # 1-based, ties share the mean rank
    r = torch.empty_like(ranks)
    r[order] = ranks
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
