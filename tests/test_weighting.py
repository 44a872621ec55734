"""Loss weighting (baselines/weighting.py and its methods: DWA, uncertainty weighting, FAMO, mtl-strong): each update
rule on a hand-computed example of its paper's formula, then the methods on the debug dataset."""

import math

import pytest
import torch
from helpers import interrupted_at

from mtcrl_lite.baselines import weighting as W
from mtcrl_lite.baselines.methods import MAX_WEIGHTED_TASKS, TunedMTL, default_hparams
from mtcrl_lite.core.tasks import Task
from mtcrl_lite.grid import search as S
from mtcrl_lite.models.networks import ModelConfig, build_model
from mtcrl_lite.run import train as T
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.rundir import read_jsonl

SMALL = {"train.batch_size": 32, "train.epochs": 3, "model.channels": (4,), "model.width": 8}
F64 = torch.float64


def build(method, **over):
    cfg = make_config("debug", method, 0, overrides={**SMALL, **over})
    data = T.load_data(cfg)
    return T.build_method(cfg, data, torch.device("cpu")), data


def batches_of(data, epoch=0):
    plan = T.epoch_plan({e: len(s) for e, s in data.train_envs.items()}, 32, 0, epoch)
    return [{e: T.to_batch(data.train_envs[e], ix, "cpu") for e, ix in idx.items()} for idx in plan]


# -- the update rules, by hand -------------------------------------------------------------------------------------


def test_dwa_weights_are_k_softmax_of_the_loss_ratios_over_t():
    # r = L(t-1) / L(t-2) = (1/2, 2/2) = (0.5, 1); T = 2: w = 2 (e^0.25, e^0.5) / (e^0.25 + e^0.5)
    w = W.dwa_weights(torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([2.0, 2.0], dtype=F64), 2.0)
    assert torch.allclose(w, torch.tensor([0.8756469982284038, 1.1243530017715964], dtype=F64), atol=1e-15)
    # three tasks, T = 1: r = (0.5, 1, 1.5), w = 3 e^r / sum e^r; they sum to K
    w = W.dwa_weights(torch.tensor([1.0, 1.0, 3.0], dtype=F64), torch.tensor([2.0, 1.0, 2.0], dtype=F64), 1.0)
    assert torch.allclose(w, torch.tensor([0.5589711696775428, 0.9215876571554953, 1.5194411731669621], dtype=F64))
    assert math.isclose(float(w.sum()), 3.0)
    # a large temperature gives equal weights; equal ratios too
    assert torch.allclose(W.dwa_weights(torch.tensor([1.0, 9.0]), torch.tensor([9.0, 1.0]), 1e9), torch.ones(2))


def test_uncertainty_weighting_is_exp_minus_s_times_l_plus_s():
    losses = torch.tensor([2.0, 0.5], dtype=F64, requires_grad=True)
    s = torch.tensor([0.0, math.log(2.0)], dtype=F64, requires_grad=True)
    per_task = W.uncertainty_loss(losses, s)  # (e^0 * 2 + 0, e^-ln2 * 0.5 + ln 2)
    assert torch.allclose(per_task, torch.tensor([2.0, 0.25 + math.log(2.0)], dtype=F64), atol=1e-15)
    per_task.sum().backward()
    assert torch.allclose(losses.grad, torch.tensor([1.0, 0.5], dtype=F64))  # the task weights e^-s
    assert torch.allclose(s.grad, torch.tensor([-1.0, 0.75], dtype=F64))  # 1 - e^-s L: zero at s = log L
    s_star = torch.log(losses.detach()).requires_grad_(True)
    W.uncertainty_loss(losses.detach(), s_star).sum().backward()
    assert torch.allclose(s_star.grad, torch.zeros(2, dtype=F64), atol=1e-15)


def test_famo_gradient_weights_each_task_by_c_z_over_its_loss():
    # z = softmax(0, ln 3) = (1/4, 3/4), l = (1, 2): z/l = (1/4, 3/8), c = 1 / (5/8): weights (0.4, 0.6)
    losses = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    logits = torch.tensor([0.0, math.log(3.0)], dtype=F64)
    W.famo_loss(losses, logits).backward()
    assert torch.allclose(losses.grad, torch.tensor([0.4, 0.6], dtype=F64), atol=1e-8)
    assert torch.allclose(W.famo_loss_weights(losses, logits), torch.tensor([0.4, 0.6], dtype=F64), atol=1e-8)
    # equal logits: (1/2 / 1, 1/2 / 2) / (3/4) = (2/3, 1/3): the task with the larger loss gets the smaller weight
    assert torch.allclose(W.famo_loss_weights(losses, torch.zeros(2, dtype=F64)), torch.tensor([2, 1], dtype=F64) / 3)


def test_famo_logit_gradient_is_the_softmax_jacobian_times_the_log_loss_decrease():
    # delta = log l(theta_t) - log l(theta_t+1) = (1, 2); z = (1/2, 1/2), z . delta = 3/2: grad = z (delta - 3/2)
    before = torch.ones(2, dtype=F64)
    after = torch.tensor([math.exp(-1.0), math.exp(-2.0)], dtype=F64)
    g = W.famo_logit_grad(torch.zeros(2, dtype=F64), before, after)
    assert torch.allclose(g, torch.tensor([-0.25, 0.25], dtype=F64), atol=1e-7)
    # the same by autograd: grad_xi softmax(xi)^T delta at xi = (0.3, -0.2, 1.0)
    xi = torch.tensor([0.3, -0.2, 1.0], dtype=F64, requires_grad=True)
    b, a = torch.tensor([1.0, 2.0, 3.0], dtype=F64), torch.tensor([0.5, 1.9, 2.0], dtype=F64)
    (torch.softmax(xi, 0) * (b.log() - a.log())).sum().backward()
    assert torch.allclose(W.famo_logit_grad(xi.detach(), b, a, eps=0.0), xi.grad, atol=1e-15)
    # Algorithm 1's first step from xi = 0 with Adam: -w_lr * sign(grad): task 2, whose log-loss fell more, loses
    # weight (gamma * xi = 0 at xi = 0)
    z = torch.zeros(2, dtype=F64)
    xi1, _, _ = W.adam_step(z, g, z, z, 1, lr=0.025, weight_decay=0.01)
    assert torch.allclose(xi1, torch.tensor([0.025, -0.025], dtype=F64), atol=1e-9)


def test_our_adam_step_is_torchs_adam_with_weight_decay():
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(3, dtype=F64, generator=gen)
    ref = p.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.025, weight_decay=0.01)
    m = v = torch.zeros(3, dtype=F64)
    for step in range(1, 7):
        g = torch.randn(3, dtype=F64, generator=gen)
        p, m, v = W.adam_step(p, g, m, v, step, lr=0.025, weight_decay=0.01)
        ref.grad = g.clone()
        opt.step()
        assert torch.allclose(p, ref.detach(), atol=1e-14, rtol=0), step


def test_ratio_weights_for_any_number_of_tasks():
    assert W.ratio_weights([math.log(3.0)], 2) == pytest.approx([0.5, 1.5])  # ratio 3, scaled to sum to 2
    assert W.ratio_weights([math.log(2.0), 0.0, 5.0], 3) == pytest.approx([0.75, 1.5, 0.75])  # extra ratios ignored
    assert W.ratio_weights([0.0] * 7, 8) == [1.0] * 8  # exactly 1: vanilla MTL
    w = W.ratio_weights([0.1 * t for t in range(7)], 8)
    assert len(w) == 8 and math.isclose(sum(w), 8.0) and w[1] / w[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="need 8"):
        W.ratio_weights([0.0] * 3, 9)


# -- the methods ---------------------------------------------------------------------------------------------------


def test_dwa_weights_come_from_the_two_previous_windows():
    m, data = build("dwa", **{"hp.window": 2, "hp.temperature": 2.0})
    raw, weights = [], []
    for step, b in enumerate(batches_of(data) + batches_of(data, 1)[:2]):  # 6 steps: three windows of 2
        logs = m.update(b, step)
        weights.append([logs["weight/left"], logs["weight/right"]])
        raw.append([logs["task/left"] / logs["weight/left"], logs["task/right"] / logs["weight/right"]])
    assert weights[:4] == [[1.0, 1.0]] * 4  # L(t-1) and L(t-2) exist from the third window on
    mean = lambda rows: torch.tensor(rows).mean(0)  # noqa: E731
    want = W.dwa_weights(mean(raw[2:4]), mean(raw[0:2]), 2.0)
    assert torch.allclose(torch.tensor(weights[4]), want, atol=1e-5) and weights[4] == weights[5]
    assert int(m.periods) == 3 and torch.allclose(m.means[1], mean(raw[4:6]), atol=1e-5)


def test_uw_log_variances_are_learned_without_weight_decay():
    m, data = build("uw", **{"hp.init_log_var": 0.5, "train.weight_decay": 1e-2})
    assert torch.equal(m.log_vars.detach(), torch.full((2,), 0.5))
    assert [g["weight_decay"] for g in m.optimizer.param_groups] == [1e-2, 0.0]
    logs = m.update(batches_of(data)[0], 0)
    assert not torch.equal(m.log_vars.detach(), torch.full((2,), 0.5))
    assert "log_vars" in m.state_dict() and logs["total"] == pytest.approx(logs["task/left"] + logs["task/right"])


def test_famo_step_moves_the_logits_by_algorithm_1_and_leaves_batchnorm_as_one_pass():
    over = {"model.module_norm": "batch"}
    famo, data = build("famo", **over, **{"hp.w_lr": 0.025})
    mtl, _ = build("mtl", **over)
    b = batches_of(data)[0]
    logs = famo.update(b, 0)
    mtl.update(b, 0)
    l1, l2 = logs["task/left"], logs["task/right"]  # FAMO logs the plain task losses
    assert logs["weight/left"] == pytest.approx(l2 / (l1 + l2), rel=1e-5)  # c z_1 / l_1 with z = (1/2, 1/2)
    bufs = dict(mtl.model.named_buffers())
    assert bufs and all(torch.equal(v, bufs[k]) for k, v in famo.model.named_buffers())  # one pass counted
    # first Adam step from 0: +-w_lr, and the task whose log-loss fell more (higher delta) gets the lower logit
    assert torch.allclose(famo.logits.abs(), torch.full((2,), 0.025), rtol=1e-3)
    assert float(famo.logits.sum()) == pytest.approx(0.0, abs=1e-7) and int(famo.logit_steps) == 1


def test_mtl_strong_at_its_defaults_is_mtl_step_for_step():
    strong, data = build("mtl-strong")
    mtl, _ = build("mtl")
    for step, b in enumerate(batches_of(data)):
        assert strong.update(b, step) == mtl.update(b, step)
    assert all(torch.equal(a, b) for a, b in zip(strong.model.parameters(), mtl.model.parameters()))


def test_mtl_strong_weights_and_dropout_work_for_eight_tasks():
    tasks = [Task(f"g{i}", "classification", 2) for i in range(8)]
    torch.manual_seed(0)
    model = build_model("mtl", (6,), tasks, ModelConfig(channels=(8,), width=8))
    hp = default_hparams("mtl-strong")
    hp.log_w2, hp.log_w8, hp.dropout = math.log(2.0), math.log(4.0), 0.3
    m = TunedMTL(model, tasks, hp, 1e-3, 0.0, ["e0", "e1"])
    assert m.weights == pytest.approx([2 / 3, 4 / 3] + [2 / 3] * 5 + [8 / 3]) and sum(m.weights) == pytest.approx(8)
    x, y = torch.randn(16, 6), {t.name: torch.randint(0, 2, (16,)) for t in tasks}
    batches = {"e0": (x[:8], {k: v[:8] for k, v in y.items()}), "e1": (x[8:], {k: v[8:] for k, v in y.items()})}
    torch.manual_seed(1)
    terms = m.objective(batches, 0)
    torch.manual_seed(1)
    h = torch.nn.functional.dropout(model.representation(x), 0.3)
    plain = {t.name: t.loss(model.heads[t.name](h), y[t.name]) for t in tasks}
    for t, w in zip(tasks, m.weights):
        assert torch.allclose(terms[f"task/{t.name}"], w * plain[t.name])
    assert MAX_WEIGHTED_TASKS == 8
    with pytest.raises(ValueError, match="up to 8 tasks"):
        nine = [Task(f"g{i}", "classification", 2) for i in range(9)]
        TunedMTL(build_model("mtl", (6,), nine, ModelConfig(channels=(8,), width=8)), nine, hp, 1e-3, 0.0, ["e"])


def test_mtl_strong_searches_weights_dropout_and_a_wider_weight_decay():
    space = {r.key: r for r in S.search_space("debug", "mtl-strong")}
    assert {"hp.dropout", "hp.log_w2", "hp.log_w8"} <= set(space)
    assert (space["train.weight_decay"].lo, space["train.weight_decay"].hi) == (1e-6, 1e-1)
    mtl = {r.key: r for r in S.search_space("debug", "mtl")}
    assert (mtl["train.weight_decay"].lo, mtl["train.weight_decay"].hi) == (1e-6, 1e-2)  # mtl's row is unchanged
    assert space["hp.log_w2"].distribution == "uniform" and space["hp.dropout"].distribution == "uniform"
    draws = [S.draw_overrides("debug", "mtl-strong", d) for d in range(1, 30)]
    assert max(d["train.weight_decay"] for d in draws) > 1e-2  # the wider range is drawn
    cfg = make_config("debug", "mtl-strong", overrides=draws[0])
    assert make_config("debug", "mtl-strong", overrides=draws[0]).digest() == cfg.digest()


@pytest.mark.parametrize("method, over", [("dwa", {"hp.window": 3}), ("famo", {}), ("uw", {}), ("nash-mtl", {})])
def test_killed_run_resumes_to_identical_results(tmp_path, method, over):
    cfg = lambda: make_config("debug", method, 0, overrides={**SMALL, **over})  # noqa: E731
    full = T.run(cfg(), tmp_path / "full", progress=False)
    with interrupted_at(9), pytest.raises(KeyboardInterrupt):  # inside epoch 2 of 3 (4 steps each)
        T.run(cfg(), tmp_path / "killed", progress=False)
    T.run(cfg(), tmp_path / "killed", progress=False)

    def rows(d):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in read_jsonl(d / "results.jsonl")]

    assert rows(full) == rows(tmp_path / "killed")
