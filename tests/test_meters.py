"""Streaming metrics (mtcrl_lite.core.meters) on tensors small enough to check by hand."""

import math

import numpy as np
import pytest
import torch

from mtcrl_lite.core import meters as M

NAN = float("nan")


# ------------------------------------------------------------------------------------------------------- auc
@pytest.mark.parametrize(
    "score, y, expected",
    [
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # pairs (pos, neg): .35>.1, .35<.4, .8>.1, .8>.4 -> 3/4
        ([1.0, 1.0, 2.0, 0.0], [1, 0, 1, 0], 0.875),  # pos 1: tie with 1 (1/2) + beats 0; pos 2: beats both -> 3.5/4
        ([3.0, 3.0, 3.0, 3.0], [1, 0, 1, 0], 0.5),  # all tied
        ([1.0, 2.0, 3.0], [0, 1, 1], 1.0),
        ([1.0, 2.0, 3.0], [1, 0, 0], 0.0),
        ([5.0, 1.0, 5.0], [True, False, False], 0.75),  # pos 5: beats 1, ties 5 -> 1.5/2
    ],
)
def test_auc_by_hand(score, y, expected):
    assert M.auc(torch.tensor(score), torch.tensor(y)) == expected


def test_auc_nan_when_a_class_is_absent():
    assert math.isnan(M.auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])))
    assert math.isnan(M.auc(torch.tensor([0.1, 0.2]), torch.tensor([0, 0])))


# ----------------------------------------------------------------------------------- confusion matrix, miou
def test_confusion_matrix_by_hand_ignores_negative_targets():
    pred = torch.tensor([[[0, 1], [1, 2]]])
    target = torch.tensor([[[0, 1], [2, -1]]])
    # (target, pred) pairs: (0,0), (1,1), (2,1); the pixel with target -1 is ignored
    expected = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    cm = M.confusion_matrix(pred, target, 3)
    assert cm.dtype == torch.int64
    assert torch.equal(cm, expected)
    assert torch.equal(M.confusion_matrix(torch.tensor([[[0, 1], [1, 0]]]), target, 3), expected)  # ignored pred moved


def test_confusion_matrix_rejects_out_of_range_class():
    with pytest.raises(ValueError, match="class index"):
        M.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 3]), 3)


def test_miou_and_pixel_accuracy_by_hand_skip_absent_classes():
    cm = torch.tensor([[2, 1, 0], [0, 3, 0], [0, 0, 0]])  # cm[target, pred]
    # class 0: TP 2, FP 0, FN 1 -> 2/3; class 1: TP 3, FP 1, FN 0 -> 3/4; class 2: union 0, skipped
    assert M.miou(cm) == pytest.approx((2 / 3 + 3 / 4) / 2, abs=1e-15)
    assert M.pixel_accuracy(cm) == pytest.approx(5 / 6, abs=1e-15)


def test_miou_counts_predicted_but_absent_class_as_zero():
    cm = torch.tensor([[1, 1], [0, 0]])  # class 1 never in the ground truth but predicted once: IoU 0
    assert M.miou(cm) == 0.25  # (1/2 + 0) / 2
    assert M.pixel_accuracy(cm) == 0.5


def test_miou_and_pixel_accuracy_nan_on_empty_matrix():
    assert math.isnan(M.miou(torch.zeros(3, 3, dtype=torch.int64)))
    assert math.isnan(M.pixel_accuracy(torch.zeros(3, 3, dtype=torch.int64)))


# ------------------------------------------------------------------------------------------------ pixel_valid
def test_pixel_valid_every_dense_kind():
    seg = torch.tensor([[[0, -1], [2, -5]]])
    assert torch.equal(M.pixel_valid(seg, "segmentation"), torch.tensor([[[True, False], [True, False]]]))
    y = torch.zeros(1, 3, 2, 2)
    y[0, 1, 0, 1] = NAN  # one channel is enough to invalidate a pixel
    y[0, :, 1, 0] = NAN
    expected = torch.tensor([[[True, False], [False, True]]])
    for kind in ("depth", "normal", "pixel"):
        assert torch.equal(M.pixel_valid(y, kind), expected)
    with pytest.raises(ValueError, match="not a dense kind"):
        M.pixel_valid(seg, "classification")


# ----------------------------------------------------------------------------------------------- angle_errors
def unit(deg):
    """Unit vector in the x-y plane at `deg` degrees from the x axis."""
    r = math.radians(deg)
    return [math.cos(r), math.sin(r), 0.0]


def normals_image(out_vecs, y_vecs, h, w):
    """(1, 3, h, w) tensors from lists of h*w 3-vectors (row-major pixels)."""

    def img(vecs):
        return torch.tensor(vecs, dtype=torch.float64).T.reshape(1, 3, h, w)

    return img(out_vecs), img(y_vecs)


X = [1.0, 0.0, 0.0]
INVALID = [NAN, NAN, NAN]


def test_angle_errors_by_hand():
    out, y = normals_image(
        [
            [2.0, 0.0, 0.0],
            [0.0, 3.0, 0.0],
            [1.0, 1.0, 0.0],
            [-1.0, 0.0, 0.0],
            [1.0, math.sqrt(3), 0.0],
            [0.0, 0.0, 7.0],
        ],
        [X, X, X, X, X, [1.0, NAN, 0.0]],
        2,
        3,
    )
    # same direction, orthogonal, 45 degrees, opposite, 60 degrees; the last pixel is invalid (one NaN channel)
    got = M.angle_errors(out, y)
    assert got.shape == (5,)
    assert got.tolist() == pytest.approx([0.0, 90.0, 45.0, 180.0, 60.0], abs=1e-6)


def test_angle_errors_clamps_cosine():
    g = torch.Generator().manual_seed(0)
    y = torch.nn.functional.normalize(torch.randn(1, 3, 10, 10, generator=g), dim=1)  # float32 unit vectors
    raw_cos = (torch.nn.functional.normalize(3 * y, dim=1) * y).sum(1)
    assert bool((raw_cos > 1).any())  # rounding pushes some cosines above 1, where acos alone would give NaN
    got = M.angle_errors(3 * y, y)
    assert not torch.isnan(got).any()
    assert float(got.max()) < 0.05


# ------------------------------------------------------------------------------------------- histogram_median
@pytest.mark.parametrize(
    "hist, edges, expected",
    [
        ([4], [0, 8], 4.0),  # half of 4 values: halfway through the only bin
        ([1, 3, 1], [0, 10, 20, 30], 15.0),  # half = 2.5: 1 before bin 1, then 1.5 of its 3 -> 10 + 10 / 2
        ([1, 1, 2], [0, 1, 2, 4], 2.0),  # half = 2 reached exactly at the end of bin 1, bin 2 non-empty
        ([2, 2], [0, 1, 2], 1.0),
        ([1, 0, 0, 1], [0, 1, 2, 3, 4], 2.0),  # CDF flat at half from 1 to 3: its middle
        ([0, 3, 0], [0, 1, 2, 3], 1.5),
    ],
)
def test_histogram_median_by_hand(hist, edges, expected):
    assert M.histogram_median(torch.tensor(hist), torch.tensor(edges, dtype=torch.float64)) == expected


def test_histogram_median_within_bin_width_of_exact_median():
    rng = np.random.default_rng(0)
    edges = torch.linspace(0.0, 10.0, 201, dtype=torch.float64)  # bin width 0.05
    samples = [
        rng.uniform(0, 10, 101),
        rng.uniform(0, 10, 100),
        rng.exponential(1.0, 30).clip(0, 9.99),
        np.array([0.51, 9.52]),
        np.array([3.33, 3.34, 3.36, 7.0]),
        np.array([5.0]),
    ]
    for v in samples:
        hist = torch.bincount(torch.from_numpy(np.floor(v / 0.05).astype(np.int64)), minlength=200)
        assert abs(M.histogram_median(hist, edges) - float(np.median(v))) <= 0.05 + 1e-12


def test_histogram_median_errors():
    with pytest.raises(ValueError, match="empty"):
        M.histogram_median(torch.zeros(3), torch.arange(4.0))
    with pytest.raises(ValueError, match="edges"):
        M.histogram_median(torch.ones(3), torch.arange(3.0))


# ------------------------------------------------------------------------------------------------- meters
def test_classification_meter_by_hand():
    m = M.ClassificationMeter(2)
    m.update(torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.tensor([1, 1]))  # right, wrong
    m.update(torch.tensor([[0.0, 3.0], [1.0, 0.0], [9.0, 0.0]]), torch.tensor([0, 0, -1]))  # wrong, right, unlabelled
    # scores out1 - out0: 1, -2 (positives), 3, -1 (negatives): pos 1 beats -1 only, pos -2 beats none -> 1/4
    assert m.compute() == {"acc": 0.5, "auc": 0.25}
    m3 = M.ClassificationMeter(3)
    m3.update(torch.tensor([[0.0, 1.0, 2.0], [5.0, 1.0, 2.0], [0.0, 1.0, 0.0]]), torch.tensor([2, 1, 1]))
    assert m3.compute() == {"acc": 2 / 3}


def test_regression_meter_by_hand():
    m = M.RegressionMeter()
    m.update(torch.tensor([[1.0], [2.0]]), torch.tensor([0.0, 4.0]))  # errors 1, -2
    m.update(torch.tensor([3.0, 5.0]), torch.tensor([3.0, NAN]))  # error 0; unlabelled skipped
    got = m.compute()
    assert got["rmse"] == pytest.approx(math.sqrt(5 / 3), abs=1e-15)
    assert got["mae"] == 1.0


def one_hot_logits(pred, n_classes):
    """(B, C, H, W) logits whose argmax is `pred` (B, H, W)."""
    return torch.nn.functional.one_hot(pred, n_classes).permute(0, 3, 1, 2).float()


def test_segmentation_meter_by_hand():
    m = M.SegmentationMeter(3)
    pred = torch.tensor([[[0, 1], [1, 1]]])
    target = torch.tensor([[[0, 1], [0, 1]]])
    m.update(one_hot_logits(pred, 3), target)
    # cm[0,0] = 1, cm[0,1] = 1, cm[1,1] = 2; class 0 IoU 1/2, class 1 IoU 2/3, class 2 absent (skipped)
    got = m.compute()
    assert got["miou"] == pytest.approx(7 / 12, abs=1e-15)
    assert got["pix_acc"] == 0.75


def test_segmentation_meter_ignored_pixels_do_not_count():
    target = torch.tensor([[[0, 1], [1, -1]]])
    results = []
    for ignored_pred in (0, 1, 2):
        m = M.SegmentationMeter(3)
        m.update(one_hot_logits(torch.tensor([[[0, 1], [1, ignored_pred]]]), 3), target)
        results.append(m.compute())
    assert results == [{"miou": 1.0, "pix_acc": 1.0}] * 3  # class 2 only predicted at the ignored pixel: skipped


def test_segmentation_meter_streaming_matches_one_batch():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(5, 4, 3, 2, generator=g)
    y = torch.randint(-1, 4, (5, 3, 2), generator=g)
    whole, parts = M.SegmentationMeter(4), M.SegmentationMeter(4)
    whole.update(out, y)
    for sl in (slice(0, 1), slice(1, 1), slice(1, 4), slice(4, 5)):  # includes an empty batch
        parts.update(out[sl], y[sl])
    # reference by an explicit loop over pixels
    ref = torch.zeros(4, 4, dtype=torch.int64)
    for t, p in zip(y.reshape(-1).tolist(), out.argmax(1).reshape(-1).tolist()):
        if t >= 0:
            ref[t, p] += 1
    assert torch.equal(whole.cm, ref) and torch.equal(parts.cm, ref)
    assert whole.compute() == parts.compute()


def depth_image(rows):
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_depth_meter_by_hand():
    m = M.DepthMeter()
    m.update(depth_image([[1.0, 5.0], [7.0, 0.5]]), depth_image([[2.0, 4.0], [NAN, 0.0]]))
    # valid: |1-2| = 1, |5-4| = 1, |0.5-0| = 0.5 -> abs 2.5/3; rel skips gt 0: 1/2, 1/4 -> 0.75/2
    got = m.compute()
    assert got["abs_err"] == pytest.approx(2.5 / 3, abs=1e-15)
    assert got["rel_err"] == 0.375


def test_depth_meter_invalid_pixels_do_not_move_and_pixel_mean_is_global():
    gt = depth_image([[2.0, NAN], [4.0, 8.0]])
    a, b = M.DepthMeter(), M.DepthMeter()
    a.update(depth_image([[1.0, 100.0], [4.0, 6.0]]), gt)
    b.update(depth_image([[1.0, -3.0], [4.0, 6.0]]), gt)  # only the invalid pixel changed
    assert a.compute() == b.compute() == {"abs_err": 1.0, "rel_err": (0.5 + 0 + 0.25) / 3}
    # the mean is over the pixels of the split, not a mean of batch means
    d = M.DepthMeter()
    d.update(depth_image([[1.0, 9.0]]), depth_image([[2.0, NAN]]))  # error 1 over 1 pixel
    d.update(depth_image([[1.0, 1.0]]), depth_image([[4.0, 4.0]]))  # errors 3, 3
    assert d.compute()["abs_err"] == 7 / 3  # not (1 + 3) / 2


def test_depth_meter_streaming_matches_one_batch_exactly():
    g = torch.Generator().manual_seed(1)
    # dyadic outputs and power-of-two depths (or 0): every error and ratio, and their float sums, are exact
    out = torch.randint(0, 64, (6, 1, 3, 4), generator=g).float() / 8
    y = 2.0 ** torch.randint(-2, 4, (6, 1, 3, 4), generator=g).float()
    y[torch.rand(y.shape, generator=g) < 0.1] = 0.0
    y[torch.rand(y.shape, generator=g) < 0.3] = NAN
    whole, parts = M.DepthMeter(), M.DepthMeter()
    whole.update(out, y)
    for sl in (slice(0, 2), slice(2, 3), slice(3, 6)):
        parts.update(out[sl], y[sl])
    assert whole.compute() == parts.compute()


def test_normal_meter_by_hand():
    angles = [0.0, 10.0, 25.0, 45.0, 90.0, 180.0]
    out_vecs = [[2 * c for c in unit(a)] for a in angles] + [[0.0, 5.0, 0.0], [1.0, 1.0, 1.0]]
    y_vecs = [X] * 6 + [[0.0, NAN, 0.0], INVALID]
    out, y = normals_image(out_vecs, y_vecs, 2, 4)
    m = M.NormalMeter()
    m.update(out.float(), y.float())
    got = m.compute()
    assert set(got) == {"mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"}
    assert got["mean_angle"] == pytest.approx(350 / 6, abs=1e-4)
    assert got["median_angle"] == pytest.approx((25 + 45) / 2, abs=0.01)  # within the bin width
    assert got["within_11.25"] == 2 / 6  # 0 and 10 degrees
    assert got["within_22.5"] == 2 / 6
    assert got["within_30"] == 3 / 6  # and 25 degrees


def test_normal_meter_invalid_pixels_do_not_move():
    y = torch.tensor([X, X, [0.0, NAN, 1.0], INVALID], dtype=torch.float32).T.reshape(1, 3, 2, 2)
    out = torch.tensor([unit(20.0), unit(40.0), X, X], dtype=torch.float32).T.reshape(1, 3, 2, 2)
    a, b = M.NormalMeter(), M.NormalMeter()
    a.update(out, y)
    out2 = out.clone()
    out2[:, :, 1, :] = torch.tensor([-1.0, 2.0, 3.0])[:, None]  # change the outputs at both invalid pixels
    b.update(out2, y)
    assert a.compute() == b.compute()
    assert a.compute()["within_22.5"] == 0.5


def test_normal_meter_streaming_and_median_within_bin_width():
    g = torch.Generator().manual_seed(2)
    out = torch.randn(5, 3, 4, 3, generator=g, dtype=torch.float64)
    y = torch.nn.functional.normalize(out + 0.7 * torch.randn(5, 3, 4, 3, generator=g, dtype=torch.float64), dim=1)
    y[:, 0][torch.rand(5, 4, 3, generator=g) < 0.2] = NAN
    whole, parts = M.NormalMeter(bins_per_degree=10), M.NormalMeter(bins_per_degree=10)
    whole.update(out, y)
    for sl in (slice(0, 1), slice(1, 3), slice(3, 5)):
        parts.update(out[sl], y[sl])
    assert torch.equal(whole.hist, parts.hist)
    w, p = whole.compute(), parts.compute()
    for k in ("median_angle", "within_11.25", "within_22.5", "within_30"):
        assert w[k] == p[k]
    assert w["mean_angle"] == pytest.approx(p["mean_angle"], rel=1e-12)
    exact = M.angle_errors(out, y).numpy()
    assert abs(w["median_angle"] - float(np.median(exact))) <= 0.1 + 1e-9
    assert w["mean_angle"] == pytest.approx(float(exact.mean()), rel=1e-12)
    assert whole.n == exact.size == int((~torch.isnan(y[:, 0])).sum())


def test_l1_meter_by_hand_per_entry_validity():
    out = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    y = torch.tensor([[[[0.5, NAN]], [[3.0, 6.0]]]])
    m = M.L1Meter()
    m.update(out, y)
    assert m.compute() == {"l1": 2.5 / 3}  # |0.5| + |0| + |2| over 3 valid entries
    out[0, 0, 0, 1] = -40.0  # the NaN entry's output does not count
    m2 = M.L1Meter()
    m2.update(out, y)
    assert m2.compute() == {"l1": 2.5 / 3}


def test_l1_meter_streaming_matches_one_batch_exactly():
    g = torch.Generator().manual_seed(3)
    out = torch.randint(-32, 32, (4, 2, 3, 3), generator=g).float() / 16
    y = torch.randint(-32, 32, (4, 2, 3, 3), generator=g).float() / 8
    y[torch.rand(y.shape, generator=g) < 0.25] = NAN
    whole, parts = M.L1Meter(), M.L1Meter()
    whole.update(out, y)
    parts.update(out[:3], y[:3])
    parts.update(out[3:], y[3:])
    assert whole.compute() == parts.compute()


@pytest.mark.parametrize(
    "meter, out, y",
    [
        (M.ClassificationMeter(2), torch.zeros(2, 2), torch.tensor([-1, -1])),
        (M.RegressionMeter(), torch.zeros(2, 1), torch.tensor([NAN, NAN])),
        (M.SegmentationMeter(2), torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2), -1)),
        (M.DepthMeter(), torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), NAN)),
        (M.NormalMeter(), torch.ones(1, 3, 2, 2), torch.full((1, 3, 2, 2), NAN)),
        (M.L1Meter(), torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), NAN)),
    ],
)
def test_meters_raise_when_nothing_valid(meter, out, y):
    with pytest.raises(ValueError, match="no valid pixel/sample"):
        meter.compute()
    meter.update(out, y)
    with pytest.raises(ValueError, match="no valid pixel/sample"):
        meter.compute()


def test_meters_accept_tensors_requiring_grad():
    out = torch.zeros(1, 1, 2, 2, requires_grad=True)
    m = M.DepthMeter()
    m.update(out, torch.ones(1, 1, 2, 2))
    assert m.compute() == {"abs_err": 1.0, "rel_err": 1.0}


def test_make_meter():
    assert isinstance(M.make_meter("classification", 3), M.ClassificationMeter)
    assert isinstance(M.make_meter("regression", 1), M.RegressionMeter)
    seg = M.make_meter("segmentation", 13)
    assert isinstance(seg, M.SegmentationMeter) and seg.n_classes == 13
    assert isinstance(M.make_meter("depth", 1), M.DepthMeter)
    assert isinstance(M.make_meter("normal", 3), M.NormalMeter)
    assert isinstance(M.make_meter("pixel", 17), M.L1Meter)
    with pytest.raises(ValueError, match="unknown kind"):
        M.make_meter("ranking", 1)
    with pytest.raises(ValueError, match="n_out=3"):
        M.make_meter("normal", 1)


def test_meters_module_does_not_import_tasks():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(M))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not any(name and "tasks" in name for name in imported)
