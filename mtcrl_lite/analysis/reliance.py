"""Measures of how much a task's predictor relies on spurious input features (docs/METHOD §6, and beyond it).

This module holds the measures only: pure functions of a model, tensors and a boolean mask. Which features are
spurious for which task of which dataset is in `mtcrl_lite.experiments.reliance_data`; the analyses of trained
runs, controls, sweeps and tables of notebook 02 are in `mtcrl_lite.experiments.reliance_study`.

* `saliency(model, x, y, task)`: S(F) = (1/n) Σ_i |∂ f(x_i)[y_i] / ∂x_i[F]|, the mean absolute input gradient
  of the true class's output (the logit by default, as in the paper's formula; or its log-probability).
* `rho_spur`: ρ = Σ_{F spurious} S(F) / Σ_F S(F) (the paper's ratio; the 1/n cancels); `rho_from_saliency` takes
  a saliency map already computed.
* `counterfactual`: intervene on the spurious features only, x_cf = where(mask, x[donor], x) with every sample
  taking the spurious part of another random sample of the same set (a derangement, `derangement` /
  `swap_spurious`), and report the prediction flip rate and the accuracy drop. For Multi-MNIST that replaces the
  other digit's half by the same half of another image; for Multi-SEM it resamples the other tasks' causal factors
  from their marginal in that set.
* `latent_model`: a model of mixed inputs x = L @ M.T seen as a function of the latent vector L.

A "model" is any callable mapping a float tensor (n, *shape) to {task: logits} or to a logits tensor. Masks are
boolean arrays of the input's per-sample shape, True on spurious features.
`experiments.reliance_data.spurious_mask(data, task)` gives them for Multi-MNIST (the other digit's half) and
Multi-SEM (the other tasks' causal coordinates, in latent space; use `latent_model` when the mixing is not the
identity)."""

from __future__ import annotations

import numpy as np
import torch

OUTPUTS = ("logit", "logprob")


def _task_logits(model, x: torch.Tensor, task) -> torch.Tensor:
    out = model(x)
    if isinstance(out, dict):
        if task not in out:
            raise KeyError(f"model has no output for task {task!r}; it has {sorted(out)}")
        out = out[task]
    if out.dim() != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"expected logits of shape (n, classes), got {tuple(out.shape)}")
    return out


def _as_tensor(a, dtype=torch.float32) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a), dtype=dtype)


def _check_mask(mask, x: torch.Tensor) -> torch.Tensor:
    mask = torch.as_tensor(np.asarray(mask, dtype=bool))
    if tuple(mask.shape) != tuple(x.shape[1:]):
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from the per-sample input shape {tuple(x.shape[1:])}")
    return mask


def saliency(model, x, y, task=None, output: str = "logit", chunk: int = 512) -> np.ndarray:
    """Mean |∂ out[y] / ∂x| over the samples, shape x.shape[1:]. `out` is the logit (or log-probability) of
    each sample's true class. Samples must not interact in the model (eval mode, no batch statistics)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    x, y = _as_tensor(x).float(), _as_tensor(y, torch.long).long()
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"need as many labels as inputs (> 0), got {len(x)} inputs and {len(y)} labels")
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    for s in range(0, len(x), chunk):
        xb = x[s : s + chunk].detach().clone().requires_grad_(True)
        logits = _task_logits(model, xb, task)
        if output == "logprob":
            logits = torch.log_softmax(logits, 1)
        picked = logits.gather(1, y[s : s + chunk, None]).sum()
        (g,) = torch.autograd.grad(picked, xb)
        total += g.abs().sum(0).double()
    return (total / len(x)).numpy()


def rho_from_saliency(sal: np.ndarray, mask) -> float:
    """Σ_{F in mask} S(F) / Σ_F S(F)."""
    sal, mask = np.asarray(sal, dtype=float), np.asarray(mask, dtype=bool)
    if sal.shape != mask.shape:
        raise ValueError(f"saliency shape {sal.shape} differs from mask shape {mask.shape}")
    total = sal.sum()
    if total <= 0:
        raise ValueError("saliency is zero everywhere: the output does not depend on the input")
    return float(sal[mask].sum() / total)


def rho_spur(model, x, y, task, mask, output: str = "logit") -> float:
    """ρ_spur of `task` (docs/METHOD §6): the share of input-gradient mass on the spurious features."""
    x = _as_tensor(x)
    return rho_from_saliency(saliency(model, x, y, task, output), _check_mask(mask, x).numpy())


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation with no fixed point (every sample gets another sample as donor)."""
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2, got {n}")
    perm = rng.permutation(n)
    for i in np.flatnonzero(perm == np.arange(n)):
        if perm[i] == i:  # may have been fixed by an earlier swap
            j = (i + 1 + rng.integers(0, n - 1)) % n  # any other position
            perm[i], perm[j] = perm[j], perm[i]
    return perm


def swap_spurious(x, mask, donor: np.ndarray) -> torch.Tensor:
    """x with its spurious features (mask) taken from x[donor]."""
    x = _as_tensor(x)
    m = _check_mask(mask, x)
    return torch.where(m, x[torch.as_tensor(donor)], x)


@torch.no_grad()
def _predict(model, x, task, chunk=2048) -> torch.Tensor:
    return torch.cat([_task_logits(model, x[s : s + chunk], task).argmax(1) for s in range(0, len(x), chunk)])


def counterfactual(model, x, y, task, mask, seed: int = 0) -> dict:
    """Intervene on the spurious features (donor = a seeded derangement of the set) and compare predictions.

    Returns flip_rate = P(pred(x_cf) != pred(x)), acc, acc_cf and acc_drop = acc - acc_cf."""
    x, y = _as_tensor(x).float(), _as_tensor(y, torch.long).long()
    donor = derangement(len(x), np.random.default_rng(seed))
    x_cf = swap_spurious(x, mask, donor)
    p, p_cf = _predict(model, x, task), _predict(model, x_cf, task)
    acc, acc_cf = float((p == y).float().mean()), float((p_cf == y).float().mean())
    return {"flip_rate": float((p != p_cf).float().mean()), "acc": acc, "acc_cf": acc_cf, "acc_drop": acc - acc_cf}


def latent_model(model, mixing: np.ndarray):
    """The model as a function of the latent vector L (x = L @ M.T): gradients and swaps then act on factors."""
    m = torch.as_tensor(np.asarray(mixing), dtype=torch.float32)
    return lambda lat: model(lat @ m.T)
