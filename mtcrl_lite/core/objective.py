"""MT-CRL on your own model: the objective Σ_t R_t + λ_dec L_dec + L_graph + λ_G L_G-IRM (docs/METHOD) for any
`RoutedModel` (your encoder and heads, the routing graph A between them), from per-environment batches.

    model = RoutedModel(encoder, {"a": head_a, "b": head_b}, n_modules=4)
    optimizer = torch.optim.Adam(param_groups(model, lr=1e-3, lr_graph=30.0))
    optimizer.zero_grad()
    terms = mtcrl_backward(model, tasks, {env: (x, {task: y})}, MTCRLHParams(), step)   # or: mtcrl_loss(...) and
    optimizer.step()                                                                    # sum(terms.values()).backward()

This is the one implementation: the package's runner (baselines.methods.MTCRLMethod) calls `mtcrl_backward`.
The task risk is the mean over environments of the per-environment risks R_t^e (over the environments whose batch
holds labels of task t; see tasks.Task for missing labels). For G-IRM the graph A is repeated once per environment
and each sample reads its environment's copy, so one call of autograd.grad(Σ R, copies, create_graph=True) yields
every dR_t^e/dA_t, shape (E, T, K).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import losses as L
from .batches import concat, env_index
from .hparams import NONNEG, POSITIVE, hp
from .routing import RoutedModel
from .tasks import Task

__all__ = [
    "MTCRLHParams",
    "RoutedModel",
    "Task",
    "forward",
    "girm_weight",
    "mtcrl_backward",
    "mtcrl_loss",
    "param_groups",
]


@dataclass
class MTCRLHParams:
    lambda_dec: float = hp(0.1, 1e-3, 1.0, "weight of the module decorrelation loss L_dec", valid=NONNEG)
    dec_kind: str = hp(
        "corr",
        doc="L_dec: 'corr' (the squared cross-correlation between modules, ours) or "
        "'kernel' (Gaussian-kernel CKA between modules, losses.kernel_dependence; design space, "
        "not searched)",
    )
    lambda_sps: float = hp(0.01, 1e-4, 0.1, "weight of ||A||_1 in L_graph (sparsity)", valid=NONNEG)
    lambda_bal: float = hp(0.1, 1e-3, 1.0, "weight of the column-balance entropy in L_graph", valid=NONNEG)
    lambda_girm: float = hp(1.0, 1e-2, 1e2, "weight of the G-IRM penalty once annealed in", valid=NONNEG)
    girm: str = hp("var", doc="'var' (paper), 'norm' (ours, IRMv1 analogue) or 'none'")
    anneal_steps: int = hp(100, 0, 1000, "G-IRM weight is 0 for this many steps, then lambda_girm", valid=NONNEG)
    lr_graph: float = hp(
        1.0, 1.0, 100.0, "learning rate of the routing logits Θ as a multiple of train.lr", valid=POSITIVE
    )
    girm_grad: str = hp(
        "exact",
        doc="'exact': dR_t^e/dA by double backward through the heads, the penalty's "
        "gradient reaches every parameter; 'first_order' (ours, for dense decoders): the same dR_t^e/dA "
        "values read off the main backward pass, the penalty's gradient reaching the encoder through "
        "the modules Z only (the heads' second derivatives are dropped)",
    )
    graph_trainable: bool = hp(
        True,
        doc="False: the routing logits Θ stay at model.theta_init (the frozen-A "
        "control: MT-CRL's architecture and losses with A fixed; G-IRM still penalises "
        "dR/dA through the encoder and heads)",
    )


class Forward(NamedTuple):
    """What one forward pass gives the objective: the named terms (task risks, dec, graph), each sample's
    environment index (B,), the risks R_t^e (E, T), which (E, T) pairs hold labels, the modules Z, the graph copies
    (E, T, K) or None, and each task's head input u_t."""

    terms: dict
    env: torch.Tensor
    risks: torch.Tensor
    present: torch.Tensor
    z: torch.Tensor
    copies: torch.Tensor | None
    inputs: dict


def param_groups(model: RoutedModel, lr: float, lr_graph: float = 1.0) -> list[dict]:
    """Optimizer groups: every parameter at lr, the routing logits Θ at lr * lr_graph. (Adam moves a parameter by
    about lr per step, so at lr 1e-3 Θ travels at most ~1 in 1,000 steps and A = sigmoid(Θ) cannot leave its start.)"""
    if lr_graph <= 0:
        raise ValueError(f"hp.lr_graph must be > 0 (a multiple of train.lr), got {lr_graph}")
    rest = [p for p in model.parameters() if p is not model.theta]
    return [{"params": rest}, {"params": [model.theta], "lr": lr * lr_graph}]


def girm_weight(h: MTCRLHParams, step: int) -> float:
    """λ_G at this step: 0 before h.anneal_steps and with h.girm = 'none'."""
    return 0.0 if h.girm == "none" or step < h.anneal_steps else float(h.lambda_girm)


def _check(model: RoutedModel, tasks: list[Task], h: MTCRLHParams) -> None:
    if h.girm not in ("none", *L.GIRM_PENALTIES):
        raise ValueError(f"hp.girm must be 'var', 'norm' or 'none', got {h.girm!r}")
    if h.girm_grad not in ("exact", "first_order"):
        raise ValueError(f"hp.girm_grad must be 'exact' or 'first_order', got {h.girm_grad!r}")
    if h.girm_grad == "first_order" and model.head_read != "concat":
        raise ValueError(
            "hp.girm_grad = 'first_order' reads dR/dA off concatenated head inputs; with "
            "model.head_read = 'sum' pass --set hp.girm_grad=exact"
        )
    if h.dec_kind not in L.DECORRELATIONS:
        raise ValueError(
            f"hp.dec_kind must be one of {sorted(L.DECORRELATIONS)}, got {h.dec_kind!r}; pass --set hp.dec_kind=corr"
        )
    if [t.name for t in tasks] != model.task_names:
        raise ValueError(f"tasks {[t.name for t in tasks]} must name the model's heads in order: {model.task_names}")


def forward(model: RoutedModel, tasks: list[Task], h: MTCRLHParams, batches, per_sample_graph: bool) -> Forward:
    """Task, decorrelation and graph terms, and what G-IRM needs. batches = {env: (x, {task: y})}."""
    _check(model, tasks, h)
    x, y = concat(batches)
    env = env_index(batches, x.device)
    z = model.modules_of(x)
    a = model.graph
    copies = a.unsqueeze(0).repeat(len(batches), 1, 1) if per_sample_graph else None  # (E, T, K)
    if copies is not None and not copies.requires_grad:  # frozen A: G-IRM still needs dR/dA
        copies.requires_grad_(True)
    inputs = model.route(z, copies[env] if per_sample_graph else a)  # per-sample graph (B, T, K) or (T, K)
    logits = {name: model.heads[name](u) for name, u in inputs.items()}
    risks, present = L.task_env_risks(tasks, logits, y, env, len(batches))  # (E, T) each
    task_risk = L.mean_over_present(risks, present)
    terms = {f"task/{t.name}": task_risk[i] for i, t in enumerate(tasks)}
    terms["dec"] = h.lambda_dec * L.DECORRELATIONS[h.dec_kind](z)
    terms["graph"] = L.graph_regularizer(a, h.lambda_sps, h.lambda_bal)
    return Forward(terms, env, risks, present, z, copies, inputs)


def mtcrl_loss(model: RoutedModel, tasks: list[Task], batches, h: MTCRLHParams, step: int) -> dict[str, torch.Tensor]:
    """MT-CRL's named, weighted loss terms at this step; minimise their sum. batches = {env: (x, {task: y})}, every
    training environment each step (G-IRM compares environments).

    The sum's gradient is the one h.girm_grad names. 'exact': dR_t^e/dA by double backward through the heads.
    'first_order': dR_t^e/dA from the head inputs' gradients held constant (`first_order_graph_grads`), so the
    penalty reaches the encoder through the modules Z only; `mtcrl_backward` fills the same gradients with one
    backward pass fewer through the heads."""
    weight = girm_weight(h, step)
    exact = h.girm_grad == "exact"
    f = forward(model, tasks, h, batches, per_sample_graph=weight > 0 and exact)
    if weight > 0 and exact:
        (grads,) = torch.autograd.grad(f.risks.sum(), f.copies, create_graph=True)
        f.terms["girm"] = weight * L.GIRM_PENALTIES[h.girm](grads, f.present)
    elif weight > 0:
        us = list(f.inputs.values())
        deltas = torch.autograd.grad(_task_total(f.terms), us, retain_graph=True)
        f.terms["girm"] = weight * L.GIRM_PENALTIES[h.girm](first_order_graph_grads(f, deltas), f.present)
    return f.terms


def _task_total(terms: dict) -> torch.Tensor:
    return sum(v for k, v in terms.items() if k.startswith("task/"))


def first_order_graph_grads(f: Forward, deltas) -> torch.Tensor:
    """dR_t^e/dA_tk (E, T, K) from deltas[t] = dTotal/du_t, Total = sum_t mean_{e in E_t} R_t^e: since
    |E_t| dTotal/du_t(b) = dR_t^{e(b)}/du_t(b), dR_t^e/dA_tk = sum_{b in e} <dR_t^e/du_t(b), Z_k(b)> exactly
    (losses.graph_grads_from_inputs), differentiable through Z and constant in the deltas."""
    n_envs = f.present.sum(0).clamp_min(1).to(f.z.dtype)  # |E_t|
    head_grads = torch.stack([d.view_as(f.z) * n_envs[i] for i, d in enumerate(deltas)])
    return L.graph_grads_from_inputs(head_grads, f.z, f.env, len(f.present))


def mtcrl_backward(
    model: RoutedModel, tasks: list[Task], batches, h: MTCRLHParams, step: int, check=None
) -> dict[str, torch.Tensor]:
    """Fill every parameter's .grad with the gradient of MT-CRL's objective (as torchjd's mtl_backward does) and
    return its named terms; the caller zeroes the gradients before and steps the optimizer after. With
    h.girm_grad = 'first_order' and G-IRM on, one backward pass through the heads and one through the encoder
    (an MTL step plus the penalty's arithmetic):

    1. backward of the task risks to the heads' parameters and their inputs u_t only (the deltas);
    2. backward of sum_t <delta_t (constant), u_t> + L_dec + L_graph + λ_G G-IRM through A and the encoder: the
       first term gives A and the encoder the task gradients a full backward would give them.

    Otherwise the sum of `mtcrl_loss` is back-propagated. `check(terms)` (optional) sees the terms before any
    backward pass, and the G-IRM term once computed (the runner stops on a non-finite loss there)."""
    check = check or (lambda terms: None)
    weight = girm_weight(h, step)
    if weight == 0 or h.girm_grad == "exact":
        terms = mtcrl_loss(model, tasks, batches, h, step)
        check(terms)
        sum(terms.values()).backward()
        return terms
    f = forward(model, tasks, h, batches, False)
    terms = f.terms
    check(terms)
    us = list(f.inputs.values())
    heads = [p for p in model.heads.parameters() if p.requires_grad]
    grads = torch.autograd.grad(_task_total(terms), us + heads, allow_unused=True)
    for p, g in zip(heads, grads[len(us) :]):
        p.grad = g if p.grad is None or g is None else p.grad + g
    deltas = grads[: len(us)]
    terms["girm"] = weight * L.GIRM_PENALTIES[h.girm](first_order_graph_grads(f, deltas), f.present)
    check({"girm": terms["girm"]})
    surrogate = sum((d * u).sum() for d, u in zip(deltas, us)) + terms["dec"] + terms["graph"] + terms["girm"]
    surrogate.backward()
    return terms
