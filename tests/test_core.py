"""The public MT-CRL core on a model of your own: both G-IRM gradients through the public API. The reference is the
runner's first-order implementation as it stood before the core existed (MTCRLMethod.first_order_backward at
031ac8e), kept here verbatim in substance so that the move cannot change a gradient."""

import pytest
import torch
from torch import nn

from mtcrl_lite import MTCRLHParams, RoutedModel, Task, mtcrl_backward, mtcrl_loss, param_groups
from mtcrl_lite.core import losses as L
from mtcrl_lite.core.objective import forward

TASKS = [Task("cls", "classification", 3, "acc"), Task("reg", "regression", 1, "rmse")]


def model_and_batches(seed=0):
    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
    heads = {"cls": nn.Linear(8, 3), "reg": nn.Sequential(nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 1))}
    model = RoutedModel(encoder, heads, n_modules=4)
    g = torch.Generator().manual_seed(seed + 1)
    batches = {
        e: (
            torch.randn(6 + e, 5, generator=g),
            {"cls": torch.randint(0, 3, (6 + e,), generator=g), "reg": torch.randn(6 + e, generator=g)},
        )
        for e in range(2)
    }
    return model, batches


def hparams(grad):
    return MTCRLHParams(anneal_steps=0, lambda_girm=10.0, girm_grad=grad)


def grads_of(model):
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def reference_first_order(model, batches, h):
    """The runner's previous two-stage backward (heads, then the encoder through a linear surrogate)."""
    terms, env, risks, present, z, _, inputs = forward(model, TASKS, h, batches, False)
    us = list(inputs.values())
    heads = [p for p in model.heads.parameters() if p.requires_grad]
    task_total = sum(v for k, v in terms.items() if k.startswith("task/"))
    grads = torch.autograd.grad(task_total, us + heads, allow_unused=True)
    for p, g in zip(heads, grads[len(us) :]):
        p.grad = g
    deltas = grads[: len(us)]
    n_envs = present.sum(0).clamp_min(1).to(z.dtype)
    head_grads = torch.stack([d.view_as(z) * n_envs[i] for i, d in enumerate(deltas)])
    terms["girm"] = h.lambda_girm * L.GIRM_PENALTIES[h.girm](L.graph_grads_from_inputs(head_grads, z, env, 2), present)
    (sum((d * u).sum() for d, u in zip(deltas, us)) + terms["dec"] + terms["graph"] + terms["girm"]).backward()
    return terms


def test_mtcrl_loss_first_order_has_the_runners_previous_gradients():
    model, batches = model_and_batches()
    terms = mtcrl_loss(model, TASKS, batches, hparams("first_order"), step=0)
    sum(terms.values()).backward()
    ours = grads_of(model)
    model.zero_grad(set_to_none=True)
    ref_terms = reference_first_order(model, batches, hparams("first_order"))
    ref = grads_of(model)
    assert set(terms) == set(ref_terms) and float(terms["girm"].detach()) > 0
    for k in terms:
        assert torch.allclose(terms[k], ref_terms[k], rtol=1e-6, atol=1e-8), k
    for name in ref:
        assert torch.allclose(ours[name], ref[name], rtol=1e-5, atol=1e-7), name


def test_mtcrl_backward_fills_the_same_gradients_as_mtcrl_loss_for_both_kinds():
    for grad in ("exact", "first_order"):
        model, batches = model_and_batches()
        sum(mtcrl_loss(model, TASKS, batches, hparams(grad), step=0).values()).backward()
        via_loss = grads_of(model)
        model.zero_grad(set_to_none=True)
        mtcrl_backward(model, TASKS, batches, hparams(grad), step=0)
        for name, g in grads_of(model).items():
            assert torch.allclose(g, via_loss[name], rtol=1e-5, atol=1e-7), (grad, name)


def test_exact_and_first_order_share_the_penalty_value_but_not_its_gradient():
    out = {}
    for grad in ("exact", "first_order"):
        model, batches = model_and_batches()
        terms = mtcrl_loss(model, TASKS, batches, hparams(grad), step=0)
        sum(terms.values()).backward()
        out[grad] = (float(terms["girm"]), grads_of(model))
    assert out["exact"][0] == pytest.approx(out["first_order"][0], rel=1e-5)
    # the exact penalty differentiates through the heads too; the first-order one does not
    head = "heads.reg.0.weight"
    assert not torch.allclose(out["exact"][1][head], out["first_order"][1][head], rtol=1e-3)


def test_before_annealing_both_kinds_are_the_plain_objective():
    model, batches = model_and_batches()
    h = MTCRLHParams(anneal_steps=5, girm_grad="first_order")
    terms = mtcrl_backward(model, TASKS, batches, h, step=4)
    assert "girm" not in terms and set(terms) == {"task/cls", "task/reg", "dec", "graph"}


def test_check_sees_the_terms_before_any_backward_and_can_stop_the_step():
    model, batches = model_and_batches()

    def stop(terms):
        raise FloatingPointError(sorted(terms))

    with pytest.raises(FloatingPointError, match="task/cls"):
        mtcrl_backward(model, TASKS, batches, hparams("first_order"), step=0, check=stop)
    assert all(p.grad is None for p in model.parameters())


def test_param_groups_give_the_routing_logits_their_own_learning_rate():
    model, _ = model_and_batches()
    groups = param_groups(model, lr=1e-3, lr_graph=30.0)
    assert groups[1]["params"] == [model.theta] and groups[1]["lr"] == pytest.approx(3e-2)
    assert sum(p.numel() for p in groups[0]["params"]) + model.theta.numel() == sum(
        p.numel() for p in model.parameters()
    )
    with pytest.raises(ValueError, match="lr_graph"):
        param_groups(model, 1e-3, 0.0)
