"""The contracts dense prediction needs, exercised on tiny tensors: splits as Datasets, the epoch plan as a
Sampler, per-pixel tasks reduced to per-sample risks, channel-group modules of a feature map, streaming evaluation."""

import math
import pickle

import numpy as np
import pytest
import torch

from mtcrl_lite.baselines.methods import METHODS, default_hparams
from mtcrl_lite.core import losses as L
from mtcrl_lite.core import objective as C
from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data.base import ArraySplit, ConcatSplit, FileSplit, MTLData
from mtcrl_lite.data.batching import EpochPlan, epoch_plan, eval_batches, to_device, train_steps
from mtcrl_lite.models.networks import MTCRL, ModelConfig, SharedMTL, SingleTask, build_model, count_parameters
from mtcrl_lite.run.evaluate import evaluate

NAN = float("nan")
S = 8
TASKS = [
    Task("seg", "segmentation", 3, "miou"),
    Task("depth", "depth", 1, "abs_err"),
    Task("normal", "normal", 3, "mean_angle"),
    Task("kp", "pixel", 1, "l1"),
]


def dense_split(n, seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3, S, S))
    y = {
        "seg": rng.integers(-1, 3, (n, S, S)),
        "depth": rng.random((n, 1, S, S)).astype(np.float32),
        "normal": (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32),
        "kp": rng.random((n, 1, S, S)).astype(np.float32),
    }
    y["depth"][:, :, :2] = np.nan  # an invalid band in every image
    return ArraySplit(rng.integers(0, 256, (n, 3, S, S), dtype=np.uint8), y)


def dense_data():
    return MTLData(
        "fake-dense", TASKS, {"e0": dense_split(12, 0), "e1": dense_split(8, 1)}, dense_split(7, 2), dense_split(9, 3)
    )


CFG = ModelConfig(channels=(4, 8), width=8, n_modules=4)


# -- splits ------------------------------------------------------------------------------------------------------
def test_array_split_items_are_batches_of_tensors():
    s = ArraySplit(np.arange(12, dtype=np.uint8).reshape(3, 1, 2, 2), {"a": np.array([2, 0, 1])})
    x, y = s[np.array([2, 0])]
    assert x.dtype == torch.float32 and x.shape == (2, 1, 2, 2)
    assert torch.equal(x[0, 0, 0], torch.tensor([8.0, 9.0]) / 255) and torch.equal(y["a"], torch.tensor([1, 2]))
    x1, y1 = s[1]  # one sample: no batch dimension
    assert x1.shape == (1, 2, 2) and int(y1["a"]) == 0
    with pytest.raises(IndexError, match="3 samples"):
        s[[3]]


def _read(item):  # top level, so that DataLoader workers can pickle it
    return np.full((2,), item, np.float32), {"a": np.array(item * 10)}


def test_file_split_concat_and_subset_read_the_same_samples_as_arrays():
    f = FileSplit([3, 4, 5], _read, ["a"])
    arr = ArraySplit(np.array([[0, 0], [1, 1]], np.float32), {"a": np.array([0, 10])})
    pooled = ConcatSplit([arr, f])
    x, y = pooled[np.array([4, 0, 2, 1])]  # out of order, across parts
    assert x[:, 0].tolist() == [5.0, 0.0, 3.0, 1.0] and y["a"].tolist() == [50, 0, 30, 10]
    assert pooled.take(np.array([3, 1]))[[0, 1]][1]["a"].tolist() == [40, 10]
    assert pickle.loads(pickle.dumps(f))[[0]][0].tolist() == [[3.0, 3.0]]


def test_train_all_pools_lazy_environments_in_order():
    envs = {"e0": FileSplit([1, 2], _read, ["a"]), "e1": FileSplit([7], _read, ["a"])}
    data = MTLData("lazy", [Task("a", "regression", 1, "rmse")], envs, envs["e0"], envs["e1"])
    assert data.train_all()[[0, 1, 2]][1]["a"].tolist() == [10, 20, 70] and data.input_shape == (2,)


# -- batching ----------------------------------------------------------------------------------------------------
def test_epoch_plan_sampler_and_workers_give_the_same_steps():
    envs = {"e0": FileSplit(list(range(10)), _read, ["a"]), "e1": FileSplit(list(range(100, 104)), _read, ["a"])}
    plan = epoch_plan({"e0": 10, "e1": 4}, 4, seed=3, epoch=1)
    assert [list(p) for p in EpochPlan({"e0": 10, "e1": 4}, 4, 3, 1)] == [list(p) for p in plan]
    direct = [(b["e0"][1]["a"].tolist(), b["e1"][1]["a"].tolist()) for b in train_steps(envs, 4, 3, 1)]
    workers = [(b["e0"][1]["a"].tolist(), b["e1"][1]["a"].tolist()) for b in train_steps(envs, 4, 3, 1, 1)]
    assert direct == workers and len(direct) == 5
    assert direct[0] == ([10 * i for i in plan[0]["e0"]], [1000 + 10 * i for i in plan[0]["e1"]])
    assert [len(b[0]) for b in eval_batches(envs["e0"], 7, 3)] == [3, 3, 1]


# -- dense tasks -------------------------------------------------------------------------------------------------
def test_depth_loss_is_the_mean_l1_over_valid_pixels_per_sample():
    t = Task("d", "depth", 1, "abs_err")
    y = torch.tensor([[[[1.0, NAN], [3.0, 5.0]]], [[[NAN, NAN], [NAN, NAN]]]])
    out = torch.tensor([[[[2.0, 100.0], [3.0, 1.0]]], [[[0.0, 0.0], [0.0, 0.0]]]], requires_grad=True)
    per = t.per_sample_loss(out, y)
    assert per.tolist() == [pytest.approx((1 + 0 + 4) / 3), 0.0]
    assert t.labelled(y).tolist() == [True, False]
    assert float(t.loss(out, y).detach()) == pytest.approx(5 / 3)  # mean over labelled samples only
    per.sum().backward()
    assert out.grad[0, 0, 0, 1] == 0 and out.grad[1].abs().sum() == 0


def test_segmentation_loss_ignores_negative_labels():
    t = Task("s", "segmentation", 2, "miou")
    out = torch.zeros(1, 2, 1, 2)
    out[0, 1, 0, 0] = math.log(3.0)  # p(class 1) = 3/4 at pixel 0
    y = torch.tensor([[[1, -1]]])
    assert float(t.per_sample_loss(out, y)[0]) == pytest.approx(-math.log(0.75))


def test_normal_loss_is_one_minus_cosine_of_the_normalised_output():
    t = Task("n", "normal", 3, "mean_angle")
    out = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)  # pixel 0: +x, pixel 1: +y
    y = torch.tensor([[1.0, NAN], [0.0, 0.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    assert float(t.per_sample_loss(out, y)[0]) == pytest.approx(0.0, abs=1e-7)  # pixel 1 is invalid
    y2 = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    assert float(t.per_sample_loss(out, y2)[0]) == pytest.approx(1.0)  # both pixels at 90 degrees


def test_streaming_evaluation_does_not_depend_on_the_batch_size():
    data = dense_data()
    torch.manual_seed(0)
    model = build_model("mtcrl", data.input_shape, TASKS, CFG)
    m = METHODS["mtcrl"].cls(model, TASKS, default_hparams("mtcrl"), 1e-3, 0.0, list(data.train_envs))
    a, b = evaluate(m, data, data.test, "cpu", chunk=2), evaluate(m, data, data.test, "cpu", chunk=100)
    for t in a:
        for k in a[t]:
            assert a[t][k] == pytest.approx(b[t][k], rel=1e-6, abs=0.02 if k == "median_angle" else 1e-9), (t, k)


# -- models ------------------------------------------------------------------------------------------------------
def test_dense_models_predict_every_pixel_and_mtcrl_adds_only_the_graph():
    shape = (3, S, S)
    mtl, crl, stl = SharedMTL(shape, TASKS, CFG), MTCRL(shape, TASKS, CFG), SingleTask(shape, TASKS, CFG)
    out = crl(torch.rand(2, *shape))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "seg": (2, 3, S, S),
        "depth": (2, 1, S, S),
        "normal": (2, 3, S, S),
        "kp": (2, 1, S, S),
    }
    assert count_parameters(crl) == count_parameters(mtl) + len(TASKS) * 4
    assert count_parameters(stl) > count_parameters(mtl)
    assert crl.modules_of(torch.rand(2, *shape)).shape == (2, 4, 2, S // 4, S // 4)


def test_a_zero_graph_entry_cuts_a_channel_group_from_that_task_only():
    crl = MTCRL((3, S, S), TASKS, CFG).eval()
    z = crl.modules_of(torch.rand(2, 3, S, S))
    a = torch.ones(len(TASKS), 4)
    a[0, 1] = 0.0  # task "seg" drops module 1
    z2 = z.clone()
    z2[:, 1] += torch.randn_like(z2[:, 1])
    o1, o2 = crl.routed_logits(z, a), crl.routed_logits(z2, a)
    assert torch.equal(o1["seg"], o2["seg"]) and not torch.allclose(o1["depth"], o2["depth"])
    per_sample = crl.routed_logits(z, a.expand(2, -1, -1))  # a per-sample graph (B, T, K) gives the same
    assert all(torch.allclose(per_sample[k], o1[k]) for k in o1)


def test_module_norm_standardises_every_channel_for_every_model():
    cfg = ModelConfig(channels=(4, 8), width=8, n_modules=4, module_norm="batch")
    for kind in ("mtl", "mtcrl"):
        model = build_model(kind, (3, S, S), TASKS, cfg).train()
        h = model.encoder(torch.rand(6, 3, S, S))
        live = h.detach().abs().sum((0, 2, 3)) > 0  # a channel the ReLU kills stays 0
        assert live.sum() >= 2
        assert torch.allclose(h.mean((0, 2, 3)), torch.zeros(8), atol=1e-5)
        assert torch.allclose(h.var((0, 2, 3), unbiased=False)[live], torch.ones(int(live.sum())), atol=0.1)  # eps
        assert count_parameters(model) == count_parameters(build_model(kind, (3, S, S), TASKS, CFG))
    with pytest.raises(ValueError, match="module_norm"):
        build_model("mtl", (3, S, S), TASKS, ModelConfig(module_norm="layer"))


def test_decorrelation_of_feature_maps_counts_positions_as_samples():
    z = torch.randn(2, 3, 2, 4, 5)
    flat = z.permute(0, 3, 4, 1, 2).reshape(40, 3, 2)
    assert torch.allclose(L.decorrelation(z), L.decorrelation(flat))


def test_mixed_dense_and_per_sample_tasks_are_refused():
    with pytest.raises(ValueError, match="mix dense"):
        SharedMTL((3, S, S), [TASKS[0], Task("c", "classification", 2)], CFG)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_on_dense_tasks(method):
    data = dense_data()
    torch.manual_seed(0)
    spec = METHODS[method]
    hp = default_hparams(method)
    if hasattr(hp, "anneal_steps"):
        hp.anneal_steps = 0
    m = spec.cls(
        build_model(spec.cls.model_kind, data.input_shape, TASKS, CFG), TASKS, hp, 1e-2, 0.0, list(data.train_envs)
    )
    before = [p.detach().clone() for p in m.model.parameters()]
    for step, batch in enumerate(train_steps(data.train_envs, 8, 0, 0)):
        logs = m.update(to_device(batch, "cpu"), step)
        assert all(math.isfinite(v) for v in logs.values()), (step, logs)
    if method.startswith("mtcrl") and method != "mtcrl-nogirm":
        assert logs["girm"] > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, m.model.parameters()))
    ev = evaluate(m, data, data.val, "cpu")
    assert set(ev) == {"seg", "depth", "normal", "kp"} and 0 <= ev["seg"]["miou"] <= 1


def test_first_order_graph_gradients_equal_the_double_backward_ones():
    """G-IRM's dR_t^e/dA from the heads' input gradients (first order) equals autograd on the graph copies."""
    data = dense_data()
    torch.manual_seed(0)
    hp = default_hparams("mtcrl")
    m = METHODS["mtcrl"].cls(
        build_model("mtcrl", data.input_shape, TASKS, CFG), TASKS, hp, 1e-3, 0.0, list(data.train_envs)
    )
    batch = to_device(next(iter(train_steps(data.train_envs, 8, 0, 0))), "cpu")
    _, env, risks, present, z, copies, _ = C.forward(m.model, TASKS, hp, batch, per_sample_graph=True)
    (exact,) = torch.autograd.grad(risks.sum(), copies)
    terms, env, risks, present, z, _, inputs = C.forward(m.model, TASKS, hp, batch, per_sample_graph=False)
    for u in inputs.values():
        u.retain_grad()
    sum(terms.values()).backward()
    n_envs = present.sum(0).clamp_min(1).to(z.dtype)
    head_grads = torch.stack([inputs[t].grad.view_as(z) * n_envs[i] for i, t in enumerate(inputs)])
    first = L.graph_grads_from_inputs(head_grads, z.detach(), env, 2)
    assert exact.abs().max() > 0 and torch.allclose(first, exact, atol=1e-6, rtol=1e-4)


def test_graph_grads_from_inputs_by_hand():
    z = torch.tensor([[[1.0], [2.0]], [[3.0], [4.0]]])  # B = 2, K = 2, d = 1
    g = torch.tensor([[[[1.0], [1.0]], [[2.0], [0.0]]]])  # T = 1
    out = L.graph_grads_from_inputs(g, z, torch.tensor([1, 1]), 2)  # both samples in environment 1
    assert out.tolist() == [[[0.0, 0.0]], [[1 * 1 + 2 * 3, 1 * 2 + 0 * 4]]]


def test_first_order_girm_trains_and_differs_from_exact_only_in_the_update():
    data = dense_data()
    logs = {}
    for mode in ("exact", "first_order"):
        torch.manual_seed(0)
        hp = default_hparams("mtcrl")
        hp.anneal_steps, hp.girm_grad = 0, mode
        m = METHODS["mtcrl"].cls(
            build_model("mtcrl", data.input_shape, TASKS, CFG), TASKS, hp, 1e-3, 0.0, list(data.train_envs)
        )
        logs[mode] = m.update(to_device(next(iter(train_steps(data.train_envs, 8, 0, 0))), "cpu"), 0)
    assert logs["exact"]["girm"] == pytest.approx(logs["first_order"]["girm"], rel=1e-4)
    assert logs["exact"]["total"] == pytest.approx(logs["first_order"]["total"], rel=1e-5)
    with pytest.raises(ValueError, match="girm_grad"):
        hp.girm_grad = "second"
        m.update(to_device(next(iter(train_steps(data.train_envs, 8, 0, 0))), "cpu"), 1)


def test_first_order_backward_gives_the_gradients_of_the_plain_formulation():
    """The two-stage backward (heads, then encoder through a linear surrogate) fills every .grad exactly as one
    backward of  Σ R + L_dec + L_graph + λ G-IRM(dR/dA from detached head-input gradients)  does."""
    data = dense_data()
    torch.manual_seed(0)
    hp = default_hparams("mtcrl")
    hp.anneal_steps, hp.girm_grad, hp.lambda_girm = 0, "first_order", 10.0
    m = METHODS["mtcrl"].cls(
        build_model("mtcrl", data.input_shape, TASKS, CFG), TASKS, hp, 1e-3, 0.0, list(data.train_envs)
    )
    batch = to_device(next(iter(train_steps(data.train_envs, 8, 0, 0))), "cpu")
    m.optimizer.zero_grad(set_to_none=True)
    C.mtcrl_backward(m.model, TASKS, batch, hp, 0)
    fast = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in m.model.parameters()]
    m.optimizer.zero_grad(set_to_none=True)
    terms, env, risks, present, z, _, inputs = C.forward(m.model, TASKS, hp, batch, per_sample_graph=False)
    task_total = sum(v for k, v in terms.items() if k.startswith("task/"))
    deltas = torch.autograd.grad(task_total, list(inputs.values()), retain_graph=True)
    n_envs = present.sum(0).clamp_min(1).to(z.dtype)
    head_grads = torch.stack([d.view_as(z) * n_envs[i] for i, d in enumerate(deltas)])
    penalty = hp.lambda_girm * L.girm_var(L.graph_grads_from_inputs(head_grads, z, env, 2), present)
    assert penalty > 0
    (sum(terms.values()) + penalty).backward()
    plain = [p.grad if p.grad is not None else torch.zeros_like(p) for p in m.model.parameters()]
    for (name, _), a, b in zip(m.model.named_parameters(), fast, plain):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4), name


def test_taskonomy_fixture_trains_end_to_end_from_the_command_line(tmp_path):
    """The commands the issue names: write the fixture, train MT-CRL on it, read the run back."""
    import json
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)

    fx = cli("-m", "mtcrl_lite.data", "fixture", "taskonomy", str(tmp_path / "tk"))
    assert fx.returncode == 0, fx.stderr
    r = cli(
        "-m",
        "mtcrl_lite.run.train",
        "--dataset",
        "taskonomy",
        "--set",
        f"data.root={tmp_path / 'tk'}",
        "--smoke",
        "--method",
        "mtcrl",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out["test"]) == {"segment_semantic", "depth_zbuffer", "normal", "keypoints2d", "edge_texture"}
    missing = cli(
        "-m",
        "mtcrl_lite.run.train",
        "--dataset",
        "taskonomy",
        "--set",
        f"data.root={tmp_path / 'none'}",
        "--smoke",
        "--method",
        "mtl",
        "--out",
        str(tmp_path / "run2"),
        "--quiet",
    )
    assert missing.returncode == 1 and "rgb" in missing.stderr and "taskonomy" in missing.stderr.lower()
