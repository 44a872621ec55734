"""Loss weighting as small pure functions on tensors: DWA, uncertainty weighting, FAMO, and fixed per-task weights.

torchjd's weightings map a matrix of task gradients (or its Gramian) to weights; these methods weight the task
*losses* from loss values (and learned scalars) instead, so they are ours, each checked in tests/test_weighting.py
against a hand-computed example of its paper's update rule. The Method classes that hold their state (buffers, so
that it is checkpointed with the run) are in methods.py.

* DWA (Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning with Attention", eq. 7):
  w_k = K exp(r_k / T) / sum_i exp(r_i / T), r_k = L_k(t-1) / L_k(t-2), L_k(t) the mean loss of task k over period t.
* Uncertainty weighting (Kendall, Gal & Cipolla 2018): sum_k exp(-s_k) L_k + s_k with s_k = log sigma_k^2 learned.
* FAMO (Liu, Liu, Jin, Stone & Liu 2023, Algorithm 1): the model minimizes sum_k z_k log(l_k) / c with z = softmax(xi)
  and c = (sum_k z_k / l_k)^-1 (so its gradient is sum_k (c z_k / l_k) grad l_k); after the step, with
  delta_k = log l_k(theta_t) - log l_k(theta_t+1) on the same batch, xi moves against grad_xi z^T delta + gamma xi.
"""

from __future__ import annotations

import math

import torch

FAMO_EPS = 1e-8  # added to every loss before its log and its inverse (the official implementation's)


def dwa_weights(last: torch.Tensor, before: torch.Tensor, temperature: float) -> torch.Tensor:
    """DWA's task weights from the mean losses of the last period (`last`, L(t-1)) and the one before (`before`,
    L(t-2)): K * softmax(r / T) with r = last / before. They sum to K, the number of tasks."""
    r = last / before
    return len(r) * torch.softmax(r / temperature, dim=0)


def uncertainty_loss(losses: torch.Tensor, log_vars: torch.Tensor) -> torch.Tensor:
    """Per-task terms exp(-s_k) L_k + s_k of uncertainty weighting (s_k = log sigma_k^2), for every task: twice Kendall
    et al.'s regression form 1/(2 sigma^2) L + log sigma (LibMTL and the Nash-MTL/FAMO code use the regression form
    itself); the factor scales every gradient alike, and the minimum over s_k stays at s_k = log L_k."""
    return torch.exp(-log_vars) * losses + log_vars


def famo_loss(losses: torch.Tensor, logits: torch.Tensor, eps: float = FAMO_EPS) -> torch.Tensor:
    """FAMO's objective of the model at one step: sum_k z_k log(l_k + eps) / c, z = softmax(logits), c = (sum_k z_k /
    (l_k + eps))^-1 held constant; its gradient is sum_k (c z_k / (l_k + eps)) grad l_k (famo_loss_weights)."""
    z = torch.softmax(logits.detach(), dim=0)
    d = losses + eps
    c = 1.0 / (z / d).sum().detach()
    return (z * d.log()).sum() * c


def famo_loss_weights(losses: torch.Tensor, logits: torch.Tensor, eps: float = FAMO_EPS) -> torch.Tensor:
    """The weight of each task's gradient in famo_loss's gradient, c z_k / (l_k + eps); they sum to 1 (logged)."""
    z = torch.softmax(logits.detach(), dim=0)
    d = losses.detach() + eps
    return z / d / (z / d).sum()


def famo_logit_grad(
    logits: torch.Tensor, before: torch.Tensor, after: torch.Tensor, eps: float = FAMO_EPS
) -> torch.Tensor:
    """grad_xi of z^T delta, z = softmax(xi), delta_k = log(l_k(theta_t) + eps) - log(l_k(theta_t+1) + eps): by the
    softmax Jacobian diag(z) - z z^T, it is z * (delta - z . delta)."""
    z = torch.softmax(logits, dim=0)
    delta = (before + eps).log() - (after + eps).log()
    return z * (delta - (z * delta).sum())


def adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: int,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of Adam with L2 weight decay (torch.optim.Adam's update; `step` counts from 1), as new tensors
    (param, exp_avg, exp_avg_sq). FAMO's logits take it with lr = w_lr and weight_decay = gamma, as the official
    implementation does (Algorithm 1's plain step xi - beta (grad + gamma xi) with Adam's scaling)."""
    g = grad + weight_decay * param
    exp_avg = betas[0] * exp_avg + (1 - betas[0]) * g
    exp_avg_sq = betas[1] * exp_avg_sq + (1 - betas[1]) * g * g
    m_hat = exp_avg / (1 - betas[0] ** step)
    denom = (exp_avg_sq / (1 - betas[1] ** step)).sqrt() + eps
    return param - lr * m_hat / denom, exp_avg, exp_avg_sq


def ratio_weights(log_ratios, n_tasks: int) -> list[float]:
    """Fixed task weights from T - 1 free log-ratios ln(w_t / w_1), t = 2..T, scaled to sum to T (so equal ratios
    give 1 for every task, vanilla MTL). Extra ratios (fields for more tasks than the dataset has) are ignored."""
    r = [0.0] + [float(v) for v in list(log_ratios)[: n_tasks - 1]]
    if len(r) < n_tasks:
        raise ValueError(f"{len(r) - 1} weight ratios for {n_tasks} tasks; need {n_tasks - 1}")
    e = [math.exp(v - max(r)) for v in r]
    return [n_tasks * v / sum(e) for v in e]
