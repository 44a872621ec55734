import pytest

from mtcrl_lite.analysis.relative import relative_improvement

# NYUv2, SegNet-MTAN, 200 epochs (docs/METHOD §8): mIoU, pix acc | depth abs, rel | normal mean, median, 11.25, 22.5, 30
HIB = {
    "seg": {"miou": True, "pix": True},
    "depth": {"abs": False, "rel": False},
    "normal": {"mean": False, "median": False, "w11": True, "w22": True, "w30": True},
}


def nyu(*v):
    return {
        "seg": {"miou": v[0], "pix": v[1]},
        "depth": {"abs": v[2], "rel": v[3]},
        "normal": {"mean": v[4], "median": v[5], "w11": v[6], "w22": v[7], "w30": v[8]},
    }


STL = nyu(38.30, 63.76, 0.6754, 0.2780, 25.01, 19.21, 30.14, 57.20, 69.15)


@pytest.mark.parametrize(
    "values, published_drop",
    [
        (nyu(39.29, 65.33, 0.5493, 0.2263, 28.15, 23.96, 22.09, 47.50, 61.08), 5.59),  # equal weights
        (nyu(38.06, 64.64, 0.5550, 0.2325, 27.41, 22.80, 23.86, 49.83, 63.14), 3.97),  # PCGrad
        (nyu(39.79, 65.49, 0.5486, 0.2250, 26.31, 21.58, 25.61, 52.36, 65.58), 0.20),  # CAGrad
        (nyu(40.13, 65.93, 0.5261, 0.2171, 25.26, 20.08, 28.40, 55.47, 68.15), -4.04),  # Nash-MTL
    ],
)
def test_all_metrics_convention_matches_published_nyuv2_numbers(values, published_drop):
    # the published Δm is a drop (positive = worse); ours is an improvement
    assert -relative_improvement(values, STL, HIB, "all_metrics") == pytest.approx(published_drop, abs=0.01)


def test_paper_and_per_task_mean_conventions_by_hand():
    hib = {"a": {"acc": True, "loss": False}, "b": {"rmse": False}}
    base = {"a": {"acc": 0.5, "loss": 2.0}, "b": {"rmse": 4.0}}
    vals = {"a": {"acc": 0.6, "loss": 1.0}, "b": {"rmse": 5.0}}
    # a/acc +20 %, a/loss +50 %, b/rmse -25 %
    assert relative_improvement(vals, base, hib, "paper", {"a": "acc", "b": "rmse"}) == pytest.approx((20 - 25) / 2)
    assert relative_improvement(vals, base, hib, "all_metrics") == pytest.approx((20 + 50 - 25) / 3)
    assert relative_improvement(vals, base, hib, "per_task_mean") == pytest.approx((35 - 25) / 2)
    assert relative_improvement(base, base, hib, "all_metrics") == 0.0


def test_relative_improvement_errors():
    hib = {"a": {"acc": True}}
    with pytest.raises(ValueError, match="valid"):
        relative_improvement({"a": {"acc": 1}}, {"a": {"acc": 1}}, hib, "nash")
    with pytest.raises(ValueError, match="primary"):
        relative_improvement({"a": {"acc": 1}}, {"a": {"acc": 1}}, hib, "paper")
    with pytest.raises(ValueError, match="undefined"):
        relative_improvement({"a": {"acc": 1}}, {"a": {"acc": 0}}, hib, "all_metrics")
    with pytest.raises(ValueError, match="tasks differ"):
        relative_improvement({"a": {"acc": 1}}, {"b": {"acc": 1}}, hib, "all_metrics")


def test_auc_by_hand_and_with_ties():
    import torch

    from mtcrl_lite.core.tasks import auc

    y = torch.tensor([0, 0, 1, 1])
    assert auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), y) == pytest.approx(0.75)  # one of four pairs misordered
    assert auc(torch.tensor([1.0, 1.0, 1.0, 1.0]), y) == pytest.approx(0.5)  # all tied
    assert auc(torch.tensor([0.0, 1.0, 1.0, 2.0]), y) == pytest.approx(0.875)  # one tied pair counts 1/2
    assert auc(torch.tensor([3.0, 2.0]), torch.tensor([1, 1])) != auc(torch.tensor([3.0, 2.0]), torch.tensor([1, 1]))


def test_task_metrics_per_kind():
    import torch

    from mtcrl_lite.core.tasks import Task

    clf = Task("c", "classification", 2)
    out = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    m = clf.metrics(out, torch.tensor([0, 1, 0]))
    assert m["acc"] == pytest.approx(2 / 3) and m["auc"] == pytest.approx(0.5) and m["loss"] > 0
    reg = Task("r", "regression", 1, primary="rmse")
    m = reg.metrics(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 3.0]))
    assert m == pytest.approx({"loss": 0.5, "rmse": 0.5**0.5, "mae": 0.5})
    with pytest.raises(ValueError, match="valid"):
        Task("x", "ranking", 1)


def test_nyuv2_delta_m_with_the_package_metric_names_and_directions():
    """The same published rows under the names our meters report (meters.py) and the directions of tasks.py,
    in both conventions: all-metrics reproduces the published Δm; 'paper' uses the primary of each NYUv2 task."""
    from mtcrl_lite.core.tasks import HIGHER_IS_BETTER
    from mtcrl_lite.data.nyuv2 import TASKS

    def named(*v):
        return {
            "segmentation": {"miou": v[0], "pix_acc": v[1]},
            "depth": {"abs_err": v[2], "rel_err": v[3]},
            "normal": {
                "mean_angle": v[4],
                "median_angle": v[5],
                "within_11.25": v[6],
                "within_22.5": v[7],
                "within_30": v[8],
            },
        }

    stl = named(38.30, 63.76, 0.6754, 0.2780, 25.01, 19.21, 30.14, 57.20, 69.15)
    nash = named(40.13, 65.93, 0.5261, 0.2171, 25.26, 20.08, 28.40, 55.47, 68.15)
    hib = {t: {m: HIGHER_IS_BETTER[m] for m in ms} for t, ms in stl.items()}
    assert -relative_improvement(nash, stl, hib, "all_metrics") == pytest.approx(-4.04, abs=0.01)
    primary = {t: TASKS[t].primary for t in TASKS}
    assert primary == {"segmentation": "miou", "depth": "abs_err", "normal": "mean_angle"}
    by_hand = ((40.13 - 38.30) / 38.30 - (0.5261 - 0.6754) / 0.6754 - (25.26 - 25.01) / 25.01) / 3 * 100
    assert relative_improvement(nash, stl, hib, "paper", primary) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(8.628, abs=1e-3)
