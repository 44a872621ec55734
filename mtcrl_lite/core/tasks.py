"""Task descriptions: what a head predicts, its loss, and which metrics (with their direction) it reports."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import meters as M
from .meters import auc  # noqa: F401  (re-exported: tasks.auc)

# Direction of every metric the package reports: True if higher is better. Drives Δ signs and model selection.
HIGHER_IS_BETTER = {
    "acc": True,
    "loss": False,
    "auc": True,
    "rmse": False,
    "mae": False,
    "miou": True,
    "pix_acc": True,
    "abs_err": False,
    "rel_err": False,
    "mean_angle": False,
    "median_angle": False,
    "within_11.25": True,
    "within_22.5": True,
    "within_30": True,
    "l1": False,
}
# Per-sample kinds (one label per sample) and dense kinds (one label per pixel; see DENSE_KINDS below).
KINDS = ("classification", "regression", "segmentation", "depth", "normal", "pixel")
# Dense label conventions (B = batch, H x W pixels; outputs of a model have the same spatial size):
#   segmentation  out (B, C, H, W) logits   y (B, H, W) int64 class, negative = ignore          loss: cross-entropy
#   depth         out (B, 1, H, W)          y (B, 1, H, W) float32, NaN = invalid pixel          loss: L1
#   normal        out (B, 3, H, W) (normalised inside the loss)  y (B, 3, H, W) unit vectors, NaN = invalid
#                                                                                                 loss: 1 - cosine
#   pixel         out (B, C, H, W)          y (B, C, H, W) float32, NaN = invalid (keypoints, edges)  loss: L1
# Each reduces to a per-sample risk: the mean over that sample's valid pixels (0 for a sample without any).
DENSE_KINDS = ("segmentation", "depth", "normal", "pixel")


@dataclass(frozen=True)
class Task:
    """What a head predicts, its loss and its metrics.

    Per-sample kinds: 'classification' (logits (B, n_out), integer labels) and 'regression' (output (B, 1), float
    targets). Dense kinds (one label per pixel, conventions in DENSE_KINDS above): 'segmentation', 'depth',
    'normal', 'pixel'. Every kind reduces to a per-sample loss (B,), so environment risks, G-IRM and IRM treat
    dense and per-sample tasks alike.

    Missing labels: a sample may carry no label for a task (MovieLens: a rating is labelled only for the genres of
    its movie). The label then is NaN (regression) or negative, e.g. -1 (classification); for dense kinds, pixels
    are invalid in the same way and a sample is labelled if it has at least one valid pixel. Unlabelled samples
    add nothing to the loss (`per_sample_loss` is 0 for them, with zero gradient), losses are means over labelled
    samples, and metrics are computed on the labelled samples / valid pixels only.
    """

    name: str
    kind: str  # one of KINDS
    n_out: int  # classes, or output channels (1 for scalar regression and depth, 3 for normals)
    primary: str = "acc"  # metric used for model selection and the paper's Δ

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: unknown kind {self.kind!r}; valid: {KINDS}")
        if self.primary not in HIGHER_IS_BETTER:
            raise ValueError(f"task {self.name}: unknown metric {self.primary!r}; valid: {sorted(HIGHER_IS_BETTER)}")

    @property
    def dense(self) -> bool:
        return self.kind in DENSE_KINDS

    def labelled(self, y: torch.Tensor) -> torch.Tensor:
        """(B,) boolean: the samples that carry a label (dense: at least one valid pixel)."""
        if self.dense:
            return M.pixel_valid(y, self.kind).flatten(1).any(1)
        if self.kind == "classification":
            return y >= 0
        return ~torch.isnan(y)

    def per_sample_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of every sample (B,); exactly 0 (and no gradient) for samples without a label. Dense kinds: the
        mean of the per-pixel loss over the sample's valid pixels."""
        if self.dense:
            return dense_per_sample_loss(self.kind, out, y)
        mask = self.labelled(y)
        if self.kind == "classification":
            return F.cross_entropy(out, y.clamp_min(0), reduction="none") * mask
        target = torch.where(mask, y.to(out.dtype), torch.zeros((), dtype=out.dtype, device=out.device))
        return (out.reshape(-1) - target) ** 2 * mask

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss over the labelled samples of the batch (a per-environment risk R_t^e when the batch is one
        environment); 0, still attached to the graph, when none is labelled."""
        return self.per_sample_loss(out, y).sum() / self.labelled(y).sum().clamp_min(1)

    def meter(self) -> TaskMeter:
        """A streaming accumulator of this task's metrics: meter.update(out, y) per batch, meter.compute()."""
        return TaskMeter(self)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Metrics of one batch of outputs (a whole split at once for small data; see `meter` to stream)."""
        m = self.meter()
        m.update(out, y)
        return m.compute()


class TaskMeter:
    """Streams a task's metrics over batches: 'loss' (mean per-sample loss over labelled samples) plus the kind's
    metrics from meters.py, accumulated on the labelled samples only. Memory does not grow with the split."""

    def __init__(self, task: Task):
        self.task, self.kind_meter = task, M.make_meter(task.kind, task.n_out)
        self.loss_sum, self.n = 0.0, 0

    @torch.no_grad()
    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        t, out = self.task, out.float()
        mask = t.labelled(y)
        self.loss_sum += float(t.per_sample_loss(out, y).double().sum())
        self.n += int(mask.sum())
        if t.dense:
            self.kind_meter.update(out, y)  # dense meters mask invalid pixels themselves
        elif bool(mask.any()):
            self.kind_meter.update(out[mask], y[mask])

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise ValueError(
                f"task {self.task.name}: no labelled sample in this split, so its metrics are undefined; "
                f"enlarge the split (data config) so that every task is represented"
            )
        return {"loss": self.loss_sum / self.n, **self.kind_meter.compute()}


def dense_per_sample_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) mean per-pixel loss over each sample's valid pixels (0, without gradient, for a sample with none).

    segmentation: cross-entropy; depth and pixel: L1 (mean over channels); normal: 1 - cos(normalise(out), y)."""
    valid = M.pixel_valid(y, kind)  # (B, H, W)
    if kind == "segmentation":
        pix = F.cross_entropy(out, y.clamp_min(0), reduction="none")  # (B, H, W)
    else:
        target = torch.nan_to_num(y.to(out.dtype), nan=0.0)
        if kind == "normal":
            pix = 1.0 - (F.normalize(out, dim=1) * target).sum(1)
        else:
            pix = (out - target).abs().mean(1)
    pix = torch.where(valid, pix, torch.zeros((), dtype=pix.dtype, device=pix.device))
    return pix.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)
