"""MT-CRL's regularizers as pure functions of tensors (docs/METHOD §3). No model, no optimizer, no state.

Shapes: B batch, K modules, d units per module, T tasks, E environments.
"""

from __future__ import annotations

import torch


def decorrelation(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """L_dec = sum_{i != j} || Zhat_i^T Zhat_j / B ||_F^2 / (K (K - 1) d^2): the mean squared cross-correlation.

    z: (B, K, d), or (B, K, d, *spatial) for channel groups of a feature map, whose positions then count as
    samples (B * h * w rows; ours: correlation across all pixels of the batch, not of pooled features).
    Each unit is standardized over the batch (population std); Zhat_i^T Zhat_j / B is then
    the d x d cross-correlation block between modules i and j. Within-module correlations are free.
    Ours: docs/METHOD writes the plain sum over ordered pairs; we divide by the number of entries so that
    lambda_dec means the same for every K and d (the sum is K(K-1)d^2 times larger; docs/DECISIONS.md).
    """
    if z.dim() < 3:
        raise ValueError(f"decorrelation expects modules of shape (B, K, d[, h, w]), got {tuple(z.shape)}")
    if z.dim() > 3:
        z = z.flatten(3).permute(0, 3, 1, 2).reshape(-1, z.shape[1], z.shape[2])
    b, k, d = z.shape
    if k < 2:
        return z.new_zeros(())
    if b < 2:
        raise ValueError("decorrelation needs a batch of at least 2 samples")
    flat = z.reshape(b, k * d)
    zs = (flat - flat.mean(0)) / (flat.std(0, unbiased=False) + eps)
    corr = zs.T @ zs / b
    block = torch.arange(k * d, device=z.device) // d
    off = block[:, None] != block[None, :]
    return (corr.pow(2) * off).sum() / off.sum()


def kernel_dependence(z: torch.Tensor, max_rows: int = 256) -> torch.Tensor:
    """L_dec alternative (ours; model design space, hp.dec_kind = "kernel"): the mean over module pairs i < j of the
    kernel CKA between Z_i and Z_j, HSIC(K_i, K_j) / sqrt(HSIC(K_i, K_i) HSIC(K_j, K_j)) (Gretton et al. 2005;
    Kornblith et al. 2019), with Gaussian kernels K_k = exp(-||z - z'||^2 / (2 s_k^2)), s_k = the median distance
    between the batch's rows of module k (the median heuristic, held constant in the gradient). Unlike the
    cross-correlation it sees non-linear dependence; 0 = independent, 1 = the same kernel matrix.

    z: (B, K, d), or (B, K, d, *spatial) whose positions count as samples; at most max_rows rows, evenly spaced,
    enter the B' x B' kernels (cost O(K B'^2 d)). The median is taken over the non-zero distances (ReLU modules
    that are mostly zero would otherwise get a zero bandwidth and no gradient); a module constant over the batch
    has no dependence to measure (its kernel centres to 0, and its pairs count 0).
    """
    if z.dim() < 3:
        raise ValueError(f"kernel_dependence expects modules of shape (B, K, d[, h, w]), got {tuple(z.shape)}")
    if z.dim() > 3:
        z = z.flatten(3).permute(0, 3, 1, 2).reshape(-1, z.shape[1], z.shape[2])
    if len(z) > max_rows:
        z = z[torch.linspace(0, len(z) - 1, max_rows, device=z.device).long()]
    b, k, _ = z.shape
    if k < 2:
        return z.new_zeros(())
    if b < 3:
        raise ValueError("kernel_dependence needs a batch of at least 3 samples")
    sq = torch.cdist(z.transpose(0, 1), z.transpose(0, 1)).pow(2)  # (K, B, B) squared distances
    off = ~torch.eye(b, dtype=torch.bool, device=z.device)
    s2 = torch.stack([_median_nonzero(q[off]) for q in sq.detach()])  # median squared distance
    kern = torch.exp(-sq / (2 * s2[:, None, None]))
    kc = kern - kern.mean(1, keepdim=True) - kern.mean(2, keepdim=True) + kern.mean((1, 2), keepdim=True)  # H K H
    hsic = torch.einsum("iab,jab->ij", kc, kc)  # (K, K), up to 1/(B-1)^2
    scale = hsic.diagonal().clamp_min(1e-12).sqrt()
    cka = hsic / (scale[:, None] * scale[None])
    i, j = torch.triu_indices(k, k, 1, device=z.device)
    return cka[i, j].mean()


def _median_nonzero(d2: torch.Tensor) -> torch.Tensor:
    nz = d2[d2 > 0]
    return nz.median() if len(nz) else d2.new_ones(())


DECORRELATIONS = {"corr": decorrelation, "kernel": kernel_dependence}


def balance_entropy(a: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of p_k = sum_t A_tk / sum_tk A_tk: log K when modules are used equally, 0 for one."""
    p = a.sum(0) / a.sum()
    return -(p * torch.log(p.clamp_min(1e-12))).sum()


def graph_regularizer(a: torch.Tensor, lambda_sps: float, lambda_bal: float) -> torch.Tensor:
    """L_graph = lambda_sps * ||A||_1 - lambda_bal * Entropy(column sums of A, normalized). a: (T, K)."""
    if a.dim() != 2:
        raise ValueError(f"routing graph must be (T, K), got {tuple(a.shape)}")
    return lambda_sps * a.abs().sum() - lambda_bal * balance_entropy(a)


def girm_var(grads: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
    """G-IRM Var: sum_t sum_e (1/E) || g_{e,t} - mean_e' g_{e',t} ||^2.

    grads: (E, T, K), grads[e, t] = dR_t^e / dA_t, the gradient of task t's risk in environment e with
    respect to its row of the routing graph. Zero iff every environment yields the same gradient.
    present: optional (E, T) boolean, False where environment e has no labelled sample of task t in the batch
    (its risk, hence its gradient, is undefined); the variance of task t is then taken over its present
    environments E_t only: sum_t (1/|E_t|) sum_{e in E_t} || g_{e,t} - mean_{E_t} g ||^2. All present = the above.
    """
    _check_grads(grads, present)
    if present is None:
        return (grads - grads.mean(0, keepdim=True)).pow(2).sum() / grads.shape[0]
    w = present.to(grads.dtype)[..., None]  # (E, T, 1)
    n = w.sum(0).clamp_min(1)  # (T, 1)
    mean = (grads * w).sum(0) / n
    return ((grads - mean).pow(2) * w).sum(0).div(n).sum()


def girm_norm(grads: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
    """G-IRM Norm (ours, the IRMv1 analogue): sum_t sum_e || g_{e,t} ||^2 over present (e, t). grads: (E, T, K)."""
    _check_grads(grads, present)
    if present is None:
        return grads.pow(2).sum()
    return (grads.pow(2) * present.to(grads.dtype)[..., None]).sum()


def _check_grads(grads: torch.Tensor, present: torch.Tensor | None = None) -> None:
    if grads.dim() != 3:
        raise ValueError(f"G-IRM expects per-environment gradients of shape (E, T, K), got {tuple(grads.shape)}")
    if present is not None and tuple(present.shape) != tuple(grads.shape[:2]):
        raise ValueError(f"present must be (E, T) = {tuple(grads.shape[:2])}, got {tuple(present.shape)}")


GIRM_PENALTIES = {"var": girm_var, "norm": girm_norm}


def graph_grads_from_inputs(head_grads: torch.Tensor, z: torch.Tensor, env: torch.Tensor, n_envs: int) -> torch.Tensor:
    """Per-environment gradients of the task risks w.r.t. the routing graph, from gradients at the heads' inputs.

    Task t's head reads u_t(b) = A_t * Z(b) (module k scaled by A_tk), so dR_t^e/dA_tk = sum_{b in e}
    <dR_t^e/du_t(b) restricted to module k, Z_k(b)>. head_grads: (T, B, K, d, *spatial), head_grads[t, b] =
    dR_t^{e(b)}/du_t(b) grouped like z; z: (B, K, d, *spatial); env: (B,). Returns (E, T, K). Differentiable in z
    (and in head_grads if they carry a graph); used with detached head_grads by MT-CRL's first-order G-IRM.
    """
    if head_grads.shape[1:] != z.shape:
        raise ValueError(f"head_grads {tuple(head_grads.shape)} must be (T, *z.shape) with z {tuple(z.shape)}")
    per_sample = (head_grads * z.unsqueeze(0)).flatten(3).sum(3)  # (T, B, K)
    out = torch.zeros(head_grads.shape[0], n_envs, z.shape[1], dtype=z.dtype, device=z.device)
    return out.index_add(1, env, per_sample).transpose(0, 1)


def env_means(
    losses: torch.Tensor, env: torch.Tensor, n_envs: int, labelled: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-environment task risks R[e, t] = mean of losses[b, t] over the samples b of environment e.

    losses: (B, T) per-sample losses; env: (B,) integer environment of each sample; labelled: optional (B, T)
    boolean, the samples that carry a label of task t (the mean is then over those; 0 where there is none, see
    `env_task_counts`).
    """
    counts = torch.bincount(env, minlength=n_envs).to(losses.dtype)
    if (counts == 0).any():
        raise ValueError(f"every environment needs samples in the batch; counts per env {counts.tolist()}")
    sums = torch.zeros(n_envs, losses.shape[1], dtype=losses.dtype, device=losses.device)
    if labelled is None:
        return sums.index_add(0, env, losses) / counts[:, None]
    sums = sums.index_add(0, env, losses * labelled.to(losses.dtype))
    return sums / env_task_counts(labelled, env, n_envs).to(losses.dtype).clamp_min(1)


def env_task_counts(labelled: torch.Tensor, env: torch.Tensor, n_envs: int) -> torch.Tensor:
    """N[e, t] = number of samples of environment e labelled for task t. labelled: (B, T) boolean."""
    out = torch.zeros(n_envs, labelled.shape[1], dtype=torch.long, device=labelled.device)
    return out.index_add(0, env, labelled.long())


def task_env_risks(tasks, outputs: dict, ys: dict, env: torch.Tensor, n_envs: int):
    """(risks (E, T), present (E, T)): each task's per-environment risk over its labelled samples (env_means of
    the tasks' per-sample losses) and whether environment e holds any label of task t. tasks: tasks.Task objects."""
    per_sample = torch.stack([t.per_sample_loss(outputs[t.name], ys[t.name]) for t in tasks], 1)
    labelled = torch.stack([t.labelled(ys[t.name]) for t in tasks], 1)  # (B, T)
    return env_means(per_sample, env, n_envs, labelled), env_task_counts(labelled, env, n_envs) > 0


def mean_over_present(risks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(T,) each task's mean risk over the environments that hold its labels (0 where none does)."""
    w = present.to(risks.dtype)
    return (risks * w).sum(0) / w.sum(0).clamp_min(1)


def vrex_penalty(risks: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
    """V-REx (Krueger et al. 2021; DomainBed's VREx), per task:
    sum_t (1/|E_t|) sum_{e in E_t} (R_t^e - mean_{E_t} R_t)^2, the variance of each task's risk over the environments
    whose batch holds labels of it (all if present is None). risks: (E, T), as env_means returns; present:
    optional (E, T) boolean. 0 iff every environment has the same risk (and identically 0 with one environment)."""
    if risks.dim() != 2:
        raise ValueError(f"V-REx expects per-environment task risks of shape (E, T), got {tuple(risks.shape)}")
    w = torch.ones_like(risks) if present is None else present.to(risks.dtype)
    if tuple(w.shape) != tuple(risks.shape):
        raise ValueError(f"present must be (E, T) = {tuple(risks.shape)}, got {tuple(present.shape)}")
    n = w.sum(0).clamp_min(1)
    mean = (risks * w).sum(0) / n
    return ((risks - mean).pow(2) * w).sum(0).div(n).sum()


def irm_penalty(logits: torch.Tensor, y: torch.Tensor, loss=torch.nn.functional.cross_entropy) -> torch.Tensor:
    """IRMv1 (Arjovsky et al. 2019): (d/dw loss(w * logits, y) at w = 1)^2 for one task in one environment.

    Zero exactly when scaling the outputs of this environment cannot lower its risk (a stationary scale).
    """
    w = torch.ones((), dtype=logits.dtype, device=logits.device, requires_grad=True)
    (g,) = torch.autograd.grad(loss(logits * w, y), w, create_graph=True)
    return g.pow(2)
