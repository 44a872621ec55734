"""Samples without a label for a task (NaN regression target, negative class): ignored by losses, risks, G-IRM,
metrics, and every method of the registry."""

import math

import numpy as np
import pytest
import torch
from test_train import cfg_for, train_one_epoch

from mtcrl_lite.baselines.methods import METHODS
from mtcrl_lite.core import losses as L
from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data.base import ArraySplit, MTLData
from mtcrl_lite.run import train as T

REG = Task("r", "regression", 1, "rmse")
CLS = Task("c", "classification", 2, "auc")


def test_regression_nan_target_has_zero_loss_and_zero_gradient():
    out = torch.tensor([[1.0], [2.0], [3.0]], requires_grad=True)
    y = torch.tensor([2.0, float("nan"), 1.0])
    ps = REG.per_sample_loss(out, y)
    assert ps.tolist() == [1.0, 0.0, 4.0]
    assert REG.loss(out, y).item() == pytest.approx(2.5)  # mean over the 2 labelled samples
    REG.loss(out, y).backward()
    assert out.grad.reshape(-1).tolist() == [-1.0, 0.0, 2.0]  # d/dout of (1/2)Σ(out - y)^2


def test_classification_negative_label_is_ignored():
    out = torch.tensor([[0.0, 1.0], [5.0, -5.0], [2.0, 0.0]], requires_grad=True)
    y = torch.tensor([1, -1, 0])
    ps = CLS.per_sample_loss(out, y)
    assert ps[1].item() == 0.0
    keep = torch.tensor([0, 2])
    assert CLS.loss(out, y).item() == pytest.approx(CLS.loss(out[keep], y[keep]).item())
    CLS.loss(out, y).backward()
    assert out.grad[1].abs().sum().item() == 0.0


def test_all_labelled_is_unchanged():
    out = torch.randn(7, 1)
    y = torch.randn(7)
    assert REG.loss(out, y).item() == pytest.approx(((out.reshape(-1) - y) ** 2).mean().item(), rel=1e-6)


def test_loss_without_any_label_is_zero_and_attached():
    out = torch.randn(4, 1, requires_grad=True)
    loss = REG.loss(out, torch.full((4,), float("nan")))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert out.grad.abs().sum().item() == 0.0


def test_metrics_use_labelled_samples_only():
    out = torch.tensor([[1.0], [9.0], [3.0], [0.0]])
    y = torch.tensor([2.0, float("nan"), 1.0, float("nan")])
    m = REG.metrics(out, y)
    assert m["rmse"] == pytest.approx(math.sqrt(2.5)) and m["mae"] == pytest.approx(1.5)
    logits = torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, -1.0], [0.0, 0.5]])
    mc = CLS.metrics(logits, torch.tensor([1, -1, 0, 0]))
    assert mc["auc"] == 1.0 and mc["acc"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no labelled sample"):
        REG.metrics(out, torch.full((4,), float("nan")))


def test_env_task_risks_with_labels_mask():
    losses = torch.tensor([[1.0, 10.0], [3.0, 20.0], [5.0, 30.0], [7.0, 40.0]])
    env = torch.tensor([0, 0, 1, 1])
    lab = torch.tensor([[True, False], [True, True], [False, False], [True, True]])
    r = L.env_means(losses, env, 2, lab)
    assert r.tolist() == [[2.0, 20.0], [7.0, 40.0]]
    assert L.env_task_counts(lab, env, 2).tolist() == [[2, 1], [1, 1]]
    lab[3, 1] = False
    assert L.env_means(losses, env, 2, lab)[1, 1].item() == 0.0  # none labelled: 0
    full = torch.ones(4, 2, dtype=torch.bool)
    assert torch.equal(L.env_means(losses, env, 2, full), L.env_means(losses, env, 2))


def test_girm_var_over_present_environments():
    g = torch.randn(3, 2, 4)
    all_present = torch.ones(3, 2, dtype=torch.bool)
    assert L.girm_var(g, all_present).item() == pytest.approx(L.girm_var(g).item(), rel=1e-6)
    present = all_present.clone()
    present[2, 1] = False  # task 1 absent from environment 2
    g2 = g.clone()
    g2[2, 1] = 0.0
    t0 = (g[:, 0] - g[:, 0].mean(0)).pow(2).sum() / 3
    t1 = (g[:2, 1] - g[:2, 1].mean(0)).pow(2).sum() / 2
    assert L.girm_var(g2, present).item() == pytest.approx((t0 + t1).item(), rel=1e-6)
    assert L.girm_norm(g2, present).item() == pytest.approx(g2.pow(2).sum().item(), rel=1e-6)
    with pytest.raises(ValueError, match="present must be"):
        L.girm_var(g, present[:, :1])


def _masked_debug(cfg):
    """The debug dataset with the right digit unlabelled (-1) for half of every split, and the left digit
    unlabelled in the whole second environment (a task absent from an environment)."""
    data = T.load_data(cfg)
    rng = np.random.default_rng(0)

    def mask(split, drop_left=False):
        y = {t: v.copy() for t, v in split.y.items()}
        y["right"][rng.random(len(split)) < 0.5] = -1
        if drop_left:
            y["left"][:] = -1
        return ArraySplit(split.x, y)

    envs = {e: mask(s, i == 1) for i, (e, s) in enumerate(data.train_envs.items())}
    return MTLData("debug-masked", data.tasks, envs, mask(data.val), mask(data.test))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_with_missing_labels(method):
    cfg = cfg_for(method, **{"hp.anneal_steps": 0})
    data = _masked_debug(cfg)
    m = T.build_method(cfg, data, torch.device("cpu"))
    before = [p.detach().clone() for p in m.model.parameters()]
    train_one_epoch(m, data)
    assert any(not torch.equal(a, b) for a, b in zip(before, m.model.parameters()))
    metrics = T.evaluate(m, data, data.test, "cpu")
    assert all(math.isfinite(v) for by_m in metrics.values() for v in by_m.values())


def test_vrex_objective_is_the_mean_risk_plus_the_weighted_variance_by_hand():
    """Two environments, one regression task, a model that outputs 0: R^e = mean of y^2 in e."""
    from torch import nn

    from mtcrl_lite.baselines.methods import VREx, VRExHParams
    from mtcrl_lite.core.tasks import Task

    class Zero(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return {"r": self.b.expand(len(x), 1)}

    task = Task("r", "regression", 1, primary="rmse")
    batches = {
        "a": (torch.zeros(2, 1), {"r": torch.tensor([1.0, 1.0])}),
        "b": (torch.zeros(2, 1), {"r": torch.tensor([3.0, 3.0])}),
    }
    m = VREx(Zero(), [task], VRExHParams(lambda_vrex=4.0, anneal_steps=1), 1e-3, 0.0, ["a", "b"])
    r = [task.loss(torch.zeros(2, 1), torch.tensor([v, v])).item() for v in (1.0, 3.0)]
    mean, var = sum(r) / 2, ((r[0] - r[1]) / 2) ** 2
    before = m.objective(batches, 0)  # weight 1 during the anneal
    assert before["task/r"].item() == pytest.approx(mean) and before["vrex"].item() == pytest.approx(var)
    after = m.objective(batches, 1)  # weight 4, loss scaled by 1 / (1 + 4)
    assert after["task/r"].item() == pytest.approx(mean / 5) and after["vrex"].item() == pytest.approx(4 * var / 5)
