"""Multi-SEM: a linear-Gaussian structural causal model with T binary tasks and a label confounder (ours).

For every sample of an environment with confounder strength m = m_C:

    C   ~ Bernoulli(1/2)                                   the label-label confounder
    Y_t = C with probability m, else 1 - C                 t = 1..T, independently given C
    Z_t = (2 Y_t - 1) * mu * u + eps_t,  eps_t ~ N(0, I_d)  task t's causal factor, u = 1_d / sqrt(d)
    N   ~ N(0, I_{d_noise})                                 noise factors (cause no label)
    L   = [Z_1, ..., Z_T, N]                                the latent vector, D = T * d + d_noise
    x   = M L                                               M = I (mixing="identity") or a random orthogonal
                                                            matrix (mixing="orthogonal", seeded by data_seed)

Consequences (used by notebook 01 and `mtcrl_lite.analysis.theory`):
* P(Y_s = Y_t) = m^2 + (1 - m)^2 for s != t: the labels are independent exactly when m = 0.5 and agree more
  often the further m is from 0.5 (the model is symmetric under m <-> 1 - m).
* The projection s_t = u . Z_t is sufficient for Y_t, s_t | Y_t ~ N(+-mu, 1), so Z_t alone predicts Y_t with
  Bayes accuracy Phi(mu) (0.933 for the default mu = 1.5).
* Z_s (s != t) is not a cause of Y_t, but is predictive of it whenever m != 0.5: a spurious feature for task t.

Environments differ only in m: training environments `train_mc` (default 0.95 and 0.85, i.e. label agreement
0.905 and 0.745), validation and test `val_mc = test_mc = 0.5` (independent labels). The `info` dict of the
returned MTLData names the input coordinates of every factor (`causal_coords[task]`, `noise_coords`); with
identity mixing these are the input features, so rho_spur can be computed on x directly; with orthogonal mixing
`info["mixing_matrix"]` (M, D x D) maps latents to inputs (x = L @ M.T, L = x @ M).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data.base import ArraySplit, MTLData

MIXINGS = ("identity", "orthogonal")


@dataclass
class MultiSEMConfig:
    """Data parameters of Multi-SEM (all overridable with --set data.KEY=VALUE)."""

    n_tasks: int = 2
    d_causal: int = 5  # dimensions of each task's causal factor Z_t
    d_noise: int = 10  # noise dimensions N (no label depends on them)
    mu: float = 1.5  # class-mean distance from 0 along u; Bayes acc from Z_t = Phi(mu)
    train_mc: tuple[float, ...] = (0.95, 0.85)  # confounder strength m_C, one training environment per entry
    val_mc: float = 0.5
    test_mc: float = 0.5
    mixing: str = "identity"  # "identity" or "orthogonal"
    n_train_per_env: int = 2000
    n_val: int = 2000
    n_test: int = 4000
    data_seed: int = 0


def task_names(n_tasks: int) -> list[str]:
    return [f"t{i + 1}" for i in range(n_tasks)]


def label_agreement(m) -> np.ndarray:
    """P(Y_s = Y_t) for two tasks under confounder strength m: m^2 + (1 - m)^2."""
    m = np.asarray(m, dtype=float)
    return m**2 + (1 - m) ** 2


def sample_labels(n: int, n_tasks: int, m: float, rng: np.random.Generator) -> np.ndarray:
    """(n, T) int64 labels: C ~ Bern(1/2), Y_t = C w.p. m else 1 - C, independently per task given C."""
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"confounder strength m_C must be in [0, 1], got {m}")
    c = rng.integers(0, 2, size=(n, 1))
    keep = rng.random((n, n_tasks)) < m
    return np.where(keep, c, 1 - c).astype(np.int64)


def sample_latents(y: np.ndarray, d_causal: int, d_noise: int, mu: float, rng: np.random.Generator) -> np.ndarray:
    """(n, T*d + d_noise) float64 latents [Z_1..Z_T, N] given labels y (n, T)."""
    n, n_tasks = y.shape
    u = np.full(d_causal, 1.0 / np.sqrt(d_causal))
    z = (2 * y[:, :, None] - 1) * mu * u + rng.standard_normal((n, n_tasks, d_causal))
    return np.concatenate([z.reshape(n, n_tasks * d_causal), rng.standard_normal((n, d_noise))], axis=1)


def mixing_matrix(kind: str, dim: int, seed: int) -> np.ndarray:
    """Identity, or a Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    if kind == "identity":
        return np.eye(dim)
    if kind == "orthogonal":
        g = np.random.default_rng([seed, 7919]).standard_normal((dim, dim))
        q, r = np.linalg.qr(g)
        return q * np.sign(np.diag(r))
    raise ValueError(f"unknown mixing {kind!r}; valid: {MIXINGS}")


def coordinates(cfg: MultiSEMConfig) -> dict:
    """Latent coordinates of every factor: {'causal': {task: [...]}, 'noise': [...]}."""
    names = task_names(cfg.n_tasks)
    causal = {t: list(range(i * cfg.d_causal, (i + 1) * cfg.d_causal)) for i, t in enumerate(names)}
    start = cfg.n_tasks * cfg.d_causal
    return {"causal": causal, "noise": list(range(start, start + cfg.d_noise))}


def validate(cfg: MultiSEMConfig) -> None:
    if cfg.n_tasks < 2:
        raise ValueError(f"Multi-SEM needs n_tasks >= 2, got {cfg.n_tasks}")
    if cfg.d_causal < 1 or cfg.d_noise < 0:
        raise ValueError(f"need d_causal >= 1 and d_noise >= 0, got {cfg.d_causal}, {cfg.d_noise}")
    if cfg.mixing not in MIXINGS:
        raise ValueError(f"unknown mixing {cfg.mixing!r}; valid: {MIXINGS}")
    if len(cfg.train_mc) == 0 or len(set(cfg.train_mc)) != len(cfg.train_mc):
        raise ValueError(f"train_mc must be non-empty and distinct, got {cfg.train_mc}")
    for m in (*cfg.train_mc, cfg.val_mc, cfg.test_mc):
        if not 0.0 <= m <= 1.0:
            raise ValueError(f"confounder strength m_C must be in [0, 1], got {m}")


def build_multisem(cfg: MultiSEMConfig) -> MTLData:
    validate(cfg)
    rng = np.random.default_rng(cfg.data_seed)
    names = task_names(cfg.n_tasks)
    dim = cfg.n_tasks * cfg.d_causal + cfg.d_noise
    mix = mixing_matrix(cfg.mixing, dim, cfg.data_seed)

    def make(n: int, m: float) -> ArraySplit:
        y = sample_labels(n, cfg.n_tasks, m, rng)
        lat = sample_latents(y, cfg.d_causal, cfg.d_noise, cfg.mu, rng)
        return ArraySplit((lat @ mix.T).astype(np.float32), {t: y[:, i].copy() for i, t in enumerate(names)})

    envs = {f"m={m:g}": make(cfg.n_train_per_env, m) for m in cfg.train_mc}
    val = make(cfg.n_val, cfg.val_mc)
    test = make(cfg.n_test, cfg.test_mc)
    coords = coordinates(cfg)

    def agree(s: ArraySplit) -> float:
        return float(np.mean(s.y[names[0]] == s.y[names[1]]))

    info = {
        "mixing": cfg.mixing,
        "mixing_matrix": mix,
        "latent_dim": dim,
        "causal_coords": coords["causal"],
        "noise_coords": coords["noise"],
        "features_identifiable": cfg.mixing == "identity",
        "m_C": {**{e: m for e, m in zip(envs, cfg.train_mc)}, "val": cfg.val_mc, "test": cfg.test_mc},
        "P(t1=t2)": {**{e: agree(s) for e, s in envs.items()}, "val": agree(val), "test": agree(test)},
        "bayes_acc_from_own_factor": 0.5 * (1 + math.erf(cfg.mu / math.sqrt(2))),
    }
    return MTLData("multisem", [Task(t, "classification", 2) for t in names], envs, val, test, info)
