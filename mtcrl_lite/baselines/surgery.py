"""Gradient surgery on the T x P matrix of per-task gradients of the shared parameters. Pure functions.

PCGrad (Yu et al., NeurIPS 2020, "Gradient Surgery for Multi-Task Learning"): for each task i, for every other
task j in a random order, if g_i' . g_j < 0 replace g_i' by g_i' - (g_i' . g_j / ||g_j||^2) g_j (projections
use the original g_j); return sum_i g_i'.

GradVac (Wang et al., ICLR 2021, "Gradient Vaccine"): keeps an EMA target similarity phî_ij per ordered pair
(initialised to 0). For each i and each other j in a random order, with phi = cos(g_i', g_j): if phi < phî_ij,
    g_i' += g_j * ||g_i'|| (phî_ij sqrt(1 - phi^2) - phi sqrt(1 - phî_ij^2)) / (||g_j|| sqrt(1 - phî_ij^2)),
and in every case phî_ij <- (1 - beta) phî_ij + beta phi. Granularity: the whole shared parameter vector (ours;
the paper also proposes per layer). beta = 0.01 as in the paper.
"""

from __future__ import annotations

import torch


def _orders(t: int, generator: torch.Generator | None) -> list[list[int]]:
    return [[j for j in torch.randperm(t, generator=generator).tolist() if j != i] for i in range(t)]


def pcgrad(
    grads: torch.Tensor, generator: torch.Generator | None = None, orders: list[list[int]] | None = None
) -> torch.Tensor:
    """grads: (T, P). Returns the combined (P,) gradient. `orders[i]` fixes the order of the other tasks."""
    if grads.dim() != 2:
        raise ValueError(f"pcgrad expects a (T, P) gradient matrix, got {tuple(grads.shape)}")
    orders = orders or _orders(grads.shape[0], generator)
    out = grads.clone()
    sq = (grads * grads).sum(1)
    for i, others in enumerate(orders):
        for j in others:
            dot = out[i] @ grads[j]
            if dot < 0 and sq[j] > 0:
                out[i] = out[i] - dot / sq[j] * grads[j]
    return out.sum(0)


def gradvac(
    grads: torch.Tensor,
    target: torch.Tensor,
    beta: float = 0.01,
    generator: torch.Generator | None = None,
    orders: list[list[int]] | None = None,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """grads: (T, P); target: (T, T) EMA similarities. Returns (combined (P,) gradient, updated target)."""
    if grads.dim() != 2 or target.shape != (grads.shape[0], grads.shape[0]):
        raise ValueError(
            f"gradvac expects (T, P) grads and a (T, T) target, got {tuple(grads.shape)}, {tuple(target.shape)}"
        )
    orders = orders or _orders(grads.shape[0], generator)
    out, new_target = grads.clone(), target.clone()
    norms = grads.norm(dim=1)
    for i, others in enumerate(orders):
        for j in others:
            ni = out[i].norm()
            if ni < eps or norms[j] < eps:
                continue
            # rounding can put the cosine of (nearly) opposite gradients just outside [-1, 1]: sqrt(1 - phi^2) NaN
            phi = ((out[i] @ grads[j]) / (ni * norms[j])).clamp(-1.0, 1.0)
            goal = new_target[i, j]
            if phi < goal:
                coef = (
                    ni
                    * (goal * torch.sqrt(1 - phi**2) - phi * torch.sqrt(1 - goal**2))
                    / (norms[j] * torch.sqrt(1 - goal**2) + eps)
                )
                out[i] = out[i] + coef * grads[j]
            new_target[i, j] = (1 - beta) * goal + beta * phi
    return out.sum(0), new_target
