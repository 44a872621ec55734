"""Streaming evaluation metrics for every task kind, accumulated batch by batch.

A split is evaluated by feeding a meter one batch at a time (``update(out, y)``) and reading the metrics at the end
(``compute()``). Meters hold state whose size does not depend on the split size (counts, sums, a confusion matrix,
a fixed histogram), so dense tasks at full resolution never need the outputs of a whole split in memory. The one
exception is the AUC of a binary classifier, which keeps one float score per sample.

Label conventions (B = batch, H x W pixels), as in ``mtcrl_lite.core.tasks``:

====================  ======================================  =================================================
kind                  out                                     y
====================  ======================================  =================================================
classification        (B, C) logits                           (B,) int64 class (negative = unlabelled, skipped)
regression            (B, 1) or (B,)                          (B,) float (NaN = unlabelled, skipped)
segmentation          (B, C, H, W) logits                     (B, H, W) int64 class, negative = ignore pixel
depth                 (B, 1, H, W)                            (B, 1, H, W) float, NaN = invalid pixel
normal                (B, 3, H, W) raw (normalised here)      (B, 3, H, W) unit vectors, NaN (any channel) = invalid
pixel                 (B, C, H, W)                            (B, C, H, W) float, NaN = invalid entry
====================  ======================================  =================================================

Meters accept tensors on any device; per-batch reductions run there in float64 and only scalars, the confusion
matrix or the histogram are moved to the CPU, where accumulators are float64 / int64. Metrics are fractions in
[0, 1] (not percent) or errors in the label's unit (angles in degrees).

This module must not import ``mtcrl_lite.core.tasks`` (which imports it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DENSE_KINDS = ("segmentation", "depth", "normal", "pixel")
NORMAL_THRESHOLDS = (11.25, 22.5, 30.0)  # degrees; reported as "within_11.25", "within_22.5", "within_30"


def _nothing_valid(meter: object) -> ValueError:
    return ValueError(
        f"{type(meter).__name__}: no valid pixel/sample for this task in this split, so its metrics "
        f"are undefined; enlarge the split (data config) or check that its labels are not all "
        f"missing (NaN / negative)"
    )


# ---------------------------------------------------------------------------------------------- pure functions
def auc(score: torch.Tensor, y: torch.Tensor) -> float:
    """ROC AUC of ``score`` for binary labels ``y`` (Mann-Whitney statistic).

    The fraction of (positive, negative) pairs in which the positive scores higher, a tie counting 1/2.
    ``y`` may be bool, int or float (non-zero = positive). NaN when one of the two classes is absent.
    """
    score = score.detach().reshape(-1).double().cpu()
    y = y.detach().reshape(-1).cpu().bool()
    if score.numel() != y.numel():
        raise ValueError(f"auc: {score.numel()} scores for {y.numel()} labels")
    pos, neg = score[y], torch.sort(score[~y]).values
    if pos.numel() == 0 or neg.numel() == 0:
        return float("nan")
    below = torch.searchsorted(neg, pos, right=False)  # negatives strictly below each positive
    below_or_tied = torch.searchsorted(neg, pos, right=True)
    wins = below.sum().double() + 0.5 * (below_or_tied - below).sum().double()
    return float(wins / (pos.numel() * neg.numel()))


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes, n_classes) int64 CPU tensor of counts[target, pred] over the entries with target >= 0.

    ``pred`` and ``target`` have the same number of entries (any shape; flattened); a negative target is an
    ignored pixel. Raises ValueError on a class index >= n_classes (or a negative prediction) at a kept entry.
    """
    pred, target = pred.detach().reshape(-1), target.detach().reshape(-1)
    if pred.numel() != target.numel():
        raise ValueError(f"confusion_matrix: {pred.numel()} predictions for {target.numel()} targets")
    keep = target >= 0
    pred, target = pred[keep].long(), target[keep].long()
    if pred.numel() and (int(target.max()) >= n_classes or int(pred.max()) >= n_classes or int(pred.min()) < 0):
        raise ValueError(
            f"confusion_matrix: class index outside [0, {n_classes}) "
            f"(targets up to {int(target.max())}, predictions in [{int(pred.min())}, "
            f"{int(pred.max())}])"
        )
    counts = torch.bincount(target * n_classes + pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).cpu()


def miou(cm: torch.Tensor) -> float:
    """Mean intersection over union of a confusion matrix ``cm[target, pred]``.

    IoU_c = TP / (TP + FP + FN), averaged over the classes whose union TP + FP + FN is > 0 (MTAN's convention:
    a class absent from both the predictions and the ground truth is skipped; a class predicted but absent from
    the ground truth, or present but never predicted, counts with IoU 0). NaN if every union is 0.
    """
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    if not bool(present.any()):
        return float("nan")
    return float((tp[present] / union[present]).mean())


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Fraction of counted pixels predicted correctly: trace(cm) / sum(cm). NaN for an empty matrix."""
    total = cm.sum()
    if int(total) == 0:
        return float("nan")
    return float(cm.diagonal().sum().double() / total.double())


def pixel_valid(y: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, H, W) boolean mask of the valid pixels of a dense label ``y``.

    segmentation: y (B, H, W), valid where y >= 0. depth / normal / pixel: y (B, C, H, W), valid where no channel
    is NaN.
    """
    if kind == "segmentation":
        if y.dim() != 3:
            raise ValueError(f"pixel_valid: segmentation labels must be (B, H, W), got {tuple(y.shape)}")
        return y >= 0
    if kind in ("depth", "normal", "pixel"):
        if y.dim() != 4:
            raise ValueError(f"pixel_valid: {kind} labels must be (B, C, H, W), got {tuple(y.shape)}")
        return ~torch.isnan(y).any(1)
    raise ValueError(f"pixel_valid: {kind!r} is not a dense kind; valid: {DENSE_KINDS}")


def angle_errors(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1-D tensor of the angles, in degrees, between normalise(out) and y at the valid pixels of y.

    out (B, 3, H, W) raw, normalised to unit length over dim 1 (F.normalize: an all-zero output stays zero and
    is at 90 degrees from everything); y (B, 3, H, W) unit vectors, a pixel with NaN in any channel is skipped.
    The cosine is clamped to [-1, 1] before acos. Pixels come in (b, h, w) order.
    """
    if out.shape != y.shape or out.dim() != 4 or out.shape[1] != 3:
        raise ValueError(
            f"angle_errors: out and y must both be (B, 3, H, W), got {tuple(out.shape)} and {tuple(y.shape)}"
        )
    valid = pixel_valid(y, "normal")
    cos = (F.normalize(out, dim=1) * y).sum(1)[valid]
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def histogram_median(hist: torch.Tensor, edges: torch.Tensor) -> float:
    """Median of values binned in a histogram, interpolating linearly inside a bin.

    hist (K,) counts, edges (K + 1,) increasing. Values are taken as spread uniformly inside their bin, making the
    empirical CDF piecewise linear, and the median is where it reaches half the total count: inside the bin that
    crosses half the count, by linear interpolation; if the CDF equals half the count exactly over an interval
    (between two halves of an even count, possibly across empty bins), at the middle of that interval.

    Error bound: the middle value(s) of the binned data lie in the bin(s) used, so the result differs from their
    exact median by at most the width of the widest of those bins (half of it in the flat case). Raises ValueError
    on an empty histogram.
    """
    hist, edges = hist.detach().reshape(-1).double().cpu(), edges.detach().reshape(-1).double().cpu()
    if edges.numel() != hist.numel() + 1:
        raise ValueError(f"histogram_median: {hist.numel()} bins need {hist.numel() + 1} edges, got {edges.numel()}")
    total = float(hist.sum())
    if total <= 0:
        raise ValueError("histogram_median: empty histogram, the median is undefined")
    cum = hist.cumsum(0)
    half = torch.tensor([total / 2.0], dtype=torch.float64)
    lo = int(torch.searchsorted(cum, half, right=False))  # first bin whose cumulative count reaches half
    hi = int(torch.searchsorted(cum, half, right=True))  # first bin whose cumulative count exceeds half
    if lo == hi:  # half the count falls strictly inside bin lo
        before = float(cum[lo - 1]) if lo > 0 else 0.0
        frac = (total / 2.0 - before) / float(hist[lo])
        return float(edges[lo] + frac * (edges[lo + 1] - edges[lo]))
    return float((edges[lo + 1] + edges[hi]) / 2.0)  # CDF flat at half from edges[lo + 1] to edges[hi]


# ---------------------------------------------------------------------------------------------------- meters
class ClassificationMeter:
    """ "acc" (argmax accuracy) and, when n_out == 2, "auc" of the score out[:, 1] - out[:, 0].

    Samples with a negative label (unlabelled) are skipped. State: two counts, plus one float score and one label
    per sample when n_out == 2 (for the AUC).
    """

    def __init__(self, n_out: int):
        if n_out < 2:
            raise ValueError(f"ClassificationMeter: n_out must be >= 2 classes, got {n_out}")
        self.n_out = n_out
        self.correct = 0
        self.n = 0
        self._scores: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: out (B, n_out) logits, y (B,) class indices."""
        out, y = out.detach(), y.detach().reshape(-1)
        if out.dim() != 2 or out.shape[1] != self.n_out or out.shape[0] != y.numel():
            raise ValueError(f"ClassificationMeter: expected out ({y.numel()}, {self.n_out}), got {tuple(out.shape)}")
        keep = y >= 0
        out, y = out[keep], y[keep]
        self.correct += int((out.argmax(1) == y).sum())
        self.n += y.numel()
        if self.n_out == 2:
            self._scores.append((out[:, 1].double() - out[:, 0].double()).cpu())
            self._labels.append(y.cpu())

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise _nothing_valid(self)
        m = {"acc": self.correct / self.n}
        if self.n_out == 2:
            m["auc"] = auc(torch.cat(self._scores), torch.cat(self._labels))
        return m


class RegressionMeter:
    """ "rmse" and "mae" over every sample seen; samples with a NaN target (unlabelled) are skipped."""

    def __init__(self):
        self.sq = 0.0
        self.abs = 0.0
        self.n = 0

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: out (B, 1) or (B,), y (B,) float targets."""
        out, y = out.detach().reshape(-1), y.detach().reshape(-1)
        if out.numel() != y.numel():
            raise ValueError(
                f"RegressionMeter: {out.numel()} outputs for {y.numel()} targets (expected out (B, 1) or (B,))"
            )
        keep = ~torch.isnan(y)
        err = out[keep].double() - y[keep].double()
        self.sq += float(err.pow(2).sum())
        self.abs += float(err.abs().sum())
        self.n += int(keep.sum())

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise _nothing_valid(self)
        return {"rmse": math.sqrt(self.sq / self.n), "mae": self.abs / self.n}


class SegmentationMeter:
    """ "miou" and "pix_acc" (fractions) of the argmax predictions, from a confusion matrix summed over the split.

    Pixels with a negative label are ignored. State: an (n_classes, n_classes) int64 matrix.
    """

    def __init__(self, n_classes: int):
        if n_classes < 1:
            raise ValueError(f"SegmentationMeter: n_classes must be >= 1, got {n_classes}")
        self.n_classes = n_classes
        self.cm = torch.zeros(n_classes, n_classes, dtype=torch.int64)

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: out (B, n_classes, H, W) logits, y (B, H, W) int64 classes (negative = ignore)."""
        out, y = out.detach(), y.detach()
        if out.dim() != 4 or out.shape[1] != self.n_classes or y.shape != out.shape[:1] + out.shape[2:]:
            raise ValueError(
                f"SegmentationMeter: expected out (B, {self.n_classes}, H, W) and y (B, H, W), got "
                f"{tuple(out.shape)} and {tuple(y.shape)}"
            )
        self.cm += confusion_matrix(out.argmax(1), y, self.n_classes)

    def compute(self) -> dict[str, float]:
        if int(self.cm.sum()) == 0:
            raise _nothing_valid(self)
        return {"miou": miou(self.cm), "pix_acc": pixel_accuracy(self.cm)}


class DepthMeter:
    """ "abs_err" and "rel_err", means over all the valid pixels of the split (not a mean of batch means).

    abs_err = mean |pred - gt| over the pixels whose gt is not NaN; rel_err = mean |pred - gt| / |gt| over those
    pixels whose gt is also non-zero (a zero depth is treated as invalid for the relative error; rel_err is NaN if
    every valid gt is 0). State: two sums and two counts.
    """

    def __init__(self):
        self.abs = 0.0
        self.rel = 0.0
        self.n = 0
        self.n_rel = 0

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: out (B, 1, H, W), y (B, 1, H, W) depth, NaN = invalid."""
        out, y = out.detach(), y.detach()
        if out.shape != y.shape or out.dim() != 4 or out.shape[1] != 1:
            raise ValueError(
                f"DepthMeter: out and y must both be (B, 1, H, W), got {tuple(out.shape)} and {tuple(y.shape)}"
            )
        valid = pixel_valid(y, "depth")
        pred, gt = out[:, 0][valid].double(), y[:, 0][valid].double()
        err = (pred - gt).abs()
        nonzero = gt != 0
        self.abs += float(err.sum())
        self.n += gt.numel()
        self.rel += float((err[nonzero] / gt[nonzero].abs()).sum())
        self.n_rel += int(nonzero.sum())

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise _nothing_valid(self)
        return {"abs_err": self.abs / self.n, "rel_err": self.rel / self.n_rel if self.n_rel else float("nan")}


class NormalMeter:
    """Angular errors, in degrees, of surface normals over all the valid pixels of the split.

    "mean_angle"; "median_angle" from a fixed histogram of 180 * bins_per_degree bins over [0, 180] degrees, so the
    state does not grow with the split: it is within one bin width (1 / bins_per_degree degrees, 0.01 by default)
    of the exact median of all the angles; "within_11.25", "within_22.5", "within_30": fractions of the valid
    pixels whose angle is < the threshold, from exact counts (not from the histogram).
    """

    def __init__(self, bins_per_degree: int = 100):
        if int(bins_per_degree) != bins_per_degree or bins_per_degree < 1:
            raise ValueError(f"NormalMeter: bins_per_degree must be a positive integer, got {bins_per_degree}")
        self.bins_per_degree = int(bins_per_degree)
        self.n_bins = 180 * self.bins_per_degree
        self.edges = torch.linspace(0.0, 180.0, self.n_bins + 1, dtype=torch.float64)
        self.hist = torch.zeros(self.n_bins, dtype=torch.int64)
        self.sum = 0.0
        self.n = 0
        self.within = {t: 0 for t in NORMAL_THRESHOLDS}

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: out (B, 3, H, W) raw normals, y (B, 3, H, W) unit vectors, NaN = invalid pixel."""
        angles = angle_errors(out.detach().double(), y.detach().double())
        idx = torch.floor(angles * self.bins_per_degree).long().clamp(0, self.n_bins - 1)
        self.hist += torch.bincount(idx, minlength=self.n_bins).cpu()
        self.sum += float(angles.sum())
        self.n += angles.numel()
        for t in NORMAL_THRESHOLDS:
            self.within[t] += int((angles < t).sum())

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise _nothing_valid(self)
        m = {"mean_angle": self.sum / self.n, "median_angle": histogram_median(self.hist, self.edges)}
        for t in NORMAL_THRESHOLDS:
            m[f"within_{t:g}"] = self.within[t] / self.n
        return m


class L1Meter:
    """ "l1": mean |out - y| over all the valid entries of the split (kind "pixel": keypoints, edges).

    Validity is per entry: an entry of y that is NaN is skipped, the other channels of that pixel still count.
    State: one sum and one count.
    """

    def __init__(self):
        self.sum = 0.0
        self.n = 0

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: out and y (B, C, H, W), NaN in y = invalid entry."""
        out, y = out.detach(), y.detach()
        if out.shape != y.shape:
            raise ValueError(
                f"L1Meter: out and y must have the same shape, got {tuple(out.shape)} and {tuple(y.shape)}"
            )
        valid = ~torch.isnan(y)
        self.sum += float((out[valid].double() - y[valid].double()).abs().sum())
        self.n += int(valid.sum())

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise _nothing_valid(self)
        return {"l1": self.sum / self.n}


def make_meter(kind: str, n_out: int):
    """A fresh meter for a task of this kind with n_out outputs (classes for classification / segmentation,
    channels for pixel; must be 1 for regression and depth, 3 for normal)."""
    fixed = {"regression": 1, "depth": 1, "normal": 3}
    if kind in fixed and n_out != fixed[kind]:
        raise ValueError(f"make_meter: kind {kind!r} needs n_out={fixed[kind]}, got {n_out}")
    if kind == "classification":
        return ClassificationMeter(n_out)
    if kind == "regression":
        return RegressionMeter()
    if kind == "segmentation":
        return SegmentationMeter(n_out)
    if kind == "depth":
        return DepthMeter()
    if kind == "normal":
        return NormalMeter()
    if kind == "pixel":
        if n_out < 1:
            raise ValueError(f"make_meter: kind 'pixel' needs n_out >= 1, got {n_out}")
        return L1Meter()
    raise ValueError(f"make_meter: unknown kind {kind!r}; valid: {('classification', 'regression') + DENSE_KINDS}")
