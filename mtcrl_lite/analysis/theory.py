"""Proposition 1 under the Multi-SEM generative model (data/sem.py), in closed form and by simulation.

Write s_t = u . Z_t for the projection of task t's causal factor on its signal direction (sufficient for Y_t;
s_t | Y_t ~ N((2 Y_t - 1) mu, 1)) and l_t = 2 mu s_t = log p(s_t | Y_t = 1) / p(s_t | Y_t = 0). Summing the
confounder C and the other labels out of the joint gives the Bayes log-odds of Y_1 (`bayes_logodds`):

    log P(Y_1 = 1 | s) / P(Y_1 = 0 | s) = l_1 + log[m H(1) + (1 - m) H(0)] - log[(1 - m) H(1) + m H(0)],
    H(c) = prod_{t >= 2} h_t(c),   h_t(1) = m e^{l_t} + 1 - m,   h_t(0) = m + (1 - m) e^{l_t}.

For T = 2, with q = m^2 + (1 - m)^2 = P(Y_1 = Y_2), this is

    l_1 + g(l_2),   g(l) = log[(q e^l + 1 - q) / ((1 - q) e^l + q)],

so the Bayes classifier reads Z_2 through g: g is identically 0 iff q = 1/2 iff m = 1/2 (Prop. 1 (i)), and its
slope at the origin, the Bayes weight on s_2, is  d/ds_2 = 2 mu (2 q - 1) = 2 mu (2 m - 1)^2  (`bayes_slope_other`).
g is not linear, so the best *linear* logistic classifier puts a somewhat different weight on s_2; we compute it
by Gauss-Hermite quadrature of the population logistic risk (`population_logistic`) and check both against a
logistic regression fitted to a large sample. At m = 1/2 and finite n, the fitted weight on Z_2 is pure
estimation noise with standard deviation of order n^{-1/2} (Prop. 1 (ii), `finite_sample_weights`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtcrl_lite.data.sem import label_agreement, sample_labels, sample_latents


def _check_m(m: float) -> None:
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"confounder strength m_C must be in [0, 1], got {m}")


def bayes_logodds(s: np.ndarray, m: float, mu: float, task: int = 0) -> np.ndarray:
    """Closed-form Bayes log-odds of Y_task given the projections s (n, T) of all causal factors."""
    _check_m(m)
    s = np.atleast_2d(np.asarray(s, dtype=float))
    if s.shape[1] < 2:
        raise ValueError(f"need the projections of >= 2 tasks' factors, got shape {s.shape}")
    ell = 2 * mu * s
    others = np.delete(ell, task, axis=1)
    with np.errstate(divide="ignore"):
        lm, l1m = np.log(m), np.log(1 - m)
        log_h1 = np.logaddexp(lm + others, l1m).sum(1)  # log H(1)
        log_h0 = np.logaddexp(lm, l1m + others).sum(1)  # log H(0)
        num = np.logaddexp(lm + log_h1, l1m + log_h0)
        den = np.logaddexp(l1m + log_h1, lm + log_h0)
    return ell[:, task] + num - den


def bayes_g(ell: np.ndarray, m: float) -> np.ndarray:
    """T = 2: the part of the Bayes log-odds of Y_1 that depends on Z_2, g(l_2) = log[(q e^l + 1-q)/((1-q) e^l + q)]."""
    _check_m(m)
    q = float(label_agreement(m))
    ell = np.asarray(ell, dtype=float)
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log(q) + ell, np.log(1 - q)) - np.logaddexp(np.log(1 - q) + ell, np.log(q))


def bayes_slope_other(m, mu: float):
    """T = 2: the Bayes weight on s_2 at the origin, d logodds / d s_2 = 2 mu (2 q - 1) = 2 mu (2 m - 1)^2."""
    return 2 * mu * (2 * label_agreement(m) - 1)


def fit_logistic(
    x: np.ndarray, y: np.ndarray, sample_weight=None, l2: float = 0.0, tol: float = 1e-10, max_iter: int = 100
) -> tuple[np.ndarray, float]:
    """Logistic regression with intercept by Newton's method (IRLS), float64: minimizes
    Σ_i w_i CE(y_i, σ(x_i·β + b)) + l2/2 |β|². Returns (β, b). Raises if it does not converge (separable data)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"need x (n, p) and y (n,), got {x.shape} and {y.shape}")
    sw = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    xa = np.hstack([x, np.ones((len(x), 1))])
    reg = np.full(xa.shape[1], l2)
    reg[-1] = 0.0
    beta = np.zeros(xa.shape[1])
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-(xa @ beta)))
        grad = xa.T @ (sw * (p - y)) + reg * beta
        hess = (xa * (sw * p * (1 - p))[:, None]).T @ xa + np.diag(reg + 1e-12)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < tol * max(1.0, np.max(np.abs(beta))):
            return beta[:-1], float(beta[-1])
    raise RuntimeError(
        f"logistic regression did not converge in {max_iter} Newton steps (separable data? add l2 > 0 or more samples)"
    )


def population_logistic(m: float, mu: float, n_nodes: int = 60) -> tuple[np.ndarray, float]:
    """T = 2: the weights (on s_1, s_2) and intercept of the best linear logistic classifier of Y_1, minimizing the
    population cross-entropy, by Gauss-Hermite quadrature over (s_1, s_2) for each of the four label pairs."""
    _check_m(m)
    nodes, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / np.sqrt(2 * np.pi)
    q = float(label_agreement(m))
    a, b = np.meshgrid(nodes, nodes, indexing="ij")
    wab = np.outer(w, w).ravel()
    xs, ys, ws = [], [], []
    for y1 in (0, 1):
        for y2 in (0, 1):
            p = q / 2 if y1 == y2 else (1 - q) / 2
            xs.append(np.stack([(2 * y1 - 1) * mu + a.ravel(), (2 * y2 - 1) * mu + b.ravel()], 1))
            ys.append(np.full(a.size, y1))
            ws.append(p * wab)
    return fit_logistic(np.concatenate(xs), np.concatenate(ys), np.concatenate(ws))


def sample(n: int, m: float, mu: float, d_causal: int, d_noise: int, seed: int):
    """n samples of the two-task Multi-SEM latents (identity mixing): (latents (n, 2d + d_noise), labels (n, 2))."""
    rng = np.random.default_rng(seed)
    y = sample_labels(n, 2, m, rng)
    return sample_latents(y, d_causal, d_noise, mu, rng), y


def fitted_weight_other(n: int, m: float, mu: float, d_causal: int, d_noise: int, seed: int, l2: float = 0.0) -> dict:
    """Fit a logistic regression of Y_1 on all latents; report its weight on Z_2: along the signal direction u
    (comparable with the Bayes slope on s_2), its norm, and the weight on s_1 for scale."""
    lat, y = sample(n, m, mu, d_causal, d_noise, seed)
    beta, _ = fit_logistic(lat, y[:, 0], l2=l2)
    u = np.full(d_causal, 1 / np.sqrt(d_causal))
    z1, z2 = beta[:d_causal], beta[d_causal : 2 * d_causal]
    return {
        "n": n,
        "m_C": m,
        "seed": seed,
        "w_other_u": float(z2 @ u),
        "w_other_norm": float(np.linalg.norm(z2)),
        "w_own_u": float(z1 @ u),
    }


def finite_sample_weights(
    ns, seeds, m: float = 0.5, mu: float = 1.5, d_causal: int = 5, d_noise: int = 10
) -> pd.DataFrame:
    """`fitted_weight_other` for every (n, seed): one row each."""
    return pd.DataFrame([fitted_weight_other(n, m, mu, d_causal, d_noise, s) for n in ns for s in seeds])


def loglog_slope(n, value) -> float:
    """Least-squares slope of log(value) against log(n)."""
    n, value = np.asarray(n, dtype=float), np.asarray(value, dtype=float)
    if (n <= 0).any() or (value <= 0).any():
        raise ValueError("log-log slope needs positive n and values")
    return float(np.polyfit(np.log(n), np.log(value), 1)[0])
