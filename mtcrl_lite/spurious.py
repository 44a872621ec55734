"""Measures of how much a task's predictor relies on spurious input features (METHOD.md §6, and beyond it).

* `saliency(model, x, y, task)`: S(F) = (1/n) Σ_i |∂ f(x_i)[y_i] / ∂x_i[F]|, the mean absolute input gradient
  of the true class's output (the logit by default, as in the paper's formula; or its log-probability).
* `rho_spur`: ρ = Σ_{F spurious} S(F) / Σ_F S(F) (the paper's ratio; the 1/n cancels).
* `counterfactual`: intervene on the spurious features only, x_cf = where(mask, x[donor], x) with every sample
  taking the spurious part of another random sample of the same set (a derangement), and report the prediction
  flip rate and the accuracy drop. For Multi-MNIST that replaces the other digit's half by the same half of another
  image; for Multi-SEM it resamples the other tasks' causal factors from their marginal in that set.

A "model" is any callable mapping a float tensor (n, *shape) to {task: logits} or to a logits tensor. Masks are
boolean arrays of the input's per-sample shape, True on spurious features. `spurious_mask(data, task)` gives
them for Multi-MNIST (the other digit's half) and Multi-SEM (the other tasks' causal coordinates, in latent
space; use `latent_model` when the mixing is not the identity).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

OUTPUTS = ("logit", "logprob")

# The paper's Table 1 (REFERENCES.md): (dataset, method) -> {row: value}.
PAPER_TABLE1 = {
    ("multisem", "stl"): {"acc_train": 0.931, "acc_val": 0.906, "rho_spur": 0.128},
    ("multisem", "mtl"): {"acc_train": 0.936, "acc_val": 0.882, "rho_spur": 0.246},
    ("multimnist", "stl"): {"acc_train": 0.981, "acc_val": 0.874, "rho_spur": 0.261},
    ("multimnist", "mtl"): {"acc_train": 0.987, "acc_val": 0.846, "rho_spur": 0.328},
}


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
        xb = x[s:s + chunk].detach().clone().requires_grad_(True)
        logits = _task_logits(model, xb, task)
        if output == "logprob":
            logits = torch.log_softmax(logits, 1)
        picked = logits.gather(1, y[s:s + chunk, None]).sum()
        g, = torch.autograd.grad(picked, xb)
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
    """ρ_spur of `task` (METHOD.md §6): the share of input-gradient mass on the spurious features."""
    x = _as_tensor(x)
    return rho_from_saliency(saliency(model, x, y, task, output), _check_mask(mask, x).numpy())


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation with no fixed point (every sample gets another sample as donor)."""
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2, got {n}")
    perm = rng.permutation(n)
    for i in np.flatnonzero(perm == np.arange(n)):
        if perm[i] == i:                                # may have been fixed by an earlier swap
            j = (i + 1 + rng.integers(0, n - 1)) % n   # any other position
            perm[i], perm[j] = perm[j], perm[i]
    return perm


def swap_spurious(x, mask, donor: np.ndarray) -> torch.Tensor:
    """x with its spurious features (mask) taken from x[donor]."""
    x = _as_tensor(x)
    m = _check_mask(mask, x)
    return torch.where(m, x[torch.as_tensor(donor)], x)


@torch.no_grad()
def _predict(model, x, task, chunk=2048) -> torch.Tensor:
    return torch.cat([_task_logits(model, x[s:s + chunk], task).argmax(1) for s in range(0, len(x), chunk)])


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


def spurious_mask(data, task: str) -> np.ndarray:
    """Boolean mask of the spurious features of `task`, in the coordinates the measures use.

    Multi-MNIST (and its debug twin): the other digit's half of the canvas (task 'right': the left half).
    Multi-SEM: the other tasks' causal factors, in latent coordinates (= input coordinates with identity mixing).
    """
    if data.name in ("multimnist", "debug"):
        shape = data.input_shape
        mask = np.zeros(shape, dtype=bool)
        half = shape[-1] // 2
        if task == "right":
            mask[..., :half] = True
        elif task == "left":
            mask[..., half:] = True
        else:
            raise KeyError(f"Multi-MNIST has tasks 'left' and 'right', not {task!r}")
        return mask
    if data.name == "multisem":
        causal = data.info["causal_coords"]
        if task not in causal:
            raise KeyError(f"Multi-SEM has tasks {sorted(causal)}, not {task!r}")
        mask = np.zeros(data.info["latent_dim"], dtype=bool)
        for t, coords in causal.items():
            if t != task:
                mask[coords] = True
        return mask
    raise ValueError(f"no spurious-feature definition for dataset {data.name!r}")


def inputs_of(data, split) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Float inputs (uint8 images scaled to [0, 1], as in training) and labels of a split, in the coordinates
    of `spurious_mask` (Multi-SEM inputs are mapped back to latents: L = x @ M)."""
    x = torch.from_numpy(split.x)
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if data.name == "multisem" and not data.info["features_identifiable"]:
        x = x @ torch.as_tensor(data.info["mixing_matrix"], dtype=torch.float32)
    return x, {t: torch.from_numpy(v).long() for t, v in split.y.items()}


def model_in_mask_coords(model, data):
    """The model as a function of the coordinates of `inputs_of` / `spurious_mask`."""
    if data.name == "multisem" and not data.info["features_identifiable"]:
        return latent_model(model, data.info["mixing_matrix"])
    return model


# In-distribution sets: the dataset rebuilt with its validation split drawn like the training mixture.
_IID_KEYS = {"multimnist": ("train_corrs", "val_corr"), "debug": ("train_corrs", "val_corr"),
             "multisem": ("train_mc", "val_mc")}


def iid_strength(dataset: str, strengths) -> float:
    """The one strength whose label agreement equals the training environments' average agreement.

    Multi-MNIST's agreement p + (1 - p)/10 is linear in p, so that is the mean p. Multi-SEM's agreement
    m^2 + (1 - m)^2 is not: m = (1 + sqrt(2 q - 1)) / 2 for the mean agreement q (taking the m >= 0.5 root)."""
    s = np.asarray(strengths, dtype=float)
    if dataset == "multisem":
        q = np.mean(s ** 2 + (1 - s) ** 2)
        return float((1 + np.sqrt(max(2 * q - 1, 0.0))) / 2)
    return float(s.mean())


def iid_split(cfg, n: int | None = None):
    """A fresh held-out split from (approximately) the training distribution: the same data config with the
    validation strength set by `iid_strength`. Training environments are unchanged (they are drawn first)."""
    from .config import make_config          # local: config imports the data registry
    from .train import load_data
    train_key, val_key = _IID_KEYS[cfg.dataset]
    strength = iid_strength(cfg.dataset, getattr(cfg.data, train_key))
    over = {f"data.{k}": v for k, v in vars(cfg.data).items()}
    over[f"data.{val_key}"] = strength
    if n is not None:
        over["data.n_val"] = n
    c = make_config(cfg.dataset, cfg.method, cfg.seed, "default", over)
    return load_data(c).val


def analyze_run(run_dir, n_max: int = 2000, output: str = "logit", seed: int = 0) -> pd.DataFrame:
    """ρ_spur and the counterfactual measures of every task of one finished run, on the shifted validation split
    and on an in-distribution split; with the run's train and validation accuracy at the selected epoch.
    One row per (task, set)."""
    from .results import final_line
    from .train import load_trained
    method, cfg, data = load_trained(run_dir)
    model = model_in_mask_coords(method.model, data)
    final = final_line(run_dir)
    sets = {"shifted": data.val, "iid": iid_split(cfg, min(n_max, cfg.data.n_val))}
    rows = []
    for name, split in sets.items():
        x, ys = inputs_of(data, split)
        x = x[:n_max]
        for t in data.tasks:
            mask = spurious_mask(data, t.name)
            y = ys[t.name][:n_max]
            cf = counterfactual(model, x, y, t.name, mask, seed=seed)
            rows.append({"dataset": cfg.dataset, "method": cfg.method, "seed": cfg.seed, "task": t.name, "set": name,
                         "rho_spur": rho_spur(model, x, y, t.name, mask, output), **cf,
                         "acc_train": final["metrics"]["train"][t.name]["acc"],
                         "acc_val": final["metrics"]["val"][t.name]["acc"],
                         "acc_test": final["metrics"]["test"][t.name]["acc"], "run_dir": str(run_dir)})
    return pd.DataFrame(rows)


def analyze_runs(run_dirs, n_max: int = 2000, output: str = "logit", seed: int = 0) -> pd.DataFrame:
    """`analyze_run` over many runs, each cached in its run directory as spurious_{output}_n{n_max}_s{seed}.csv."""
    frames = []
    for d in run_dirs:
        f = Path(d) / f"spurious_{output}_n{n_max}_s{seed}.csv"
        if f.exists():
            frames.append(pd.read_csv(f))
            continue
        df = analyze_run(d, n_max, output, seed)
        df.to_csv(f, index=False)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# The config key of the training strengths of each dataset, and the strength that means "no correlation".
STRENGTH_KEY = {"multisem": "data.train_mc", "multimnist": "data.train_corrs", "debug": "data.train_corrs"}
NO_CORRELATION = {"multisem": 0.5, "multimnist": 0.0, "debug": 0.0}


def single_env_overrides(dataset: str, strength: float, scale: str, overrides=None) -> dict:
    """Overrides for ONE training environment of the given strength holding as many samples as the scale's
    default environments together (so a sweep over strength keeps the training-set size fixed)."""
    from .config import make_config
    base = make_config(dataset, "mtl", 0, scale, overrides)
    n_total = base.data.n_train_per_env * len(getattr(base.data, STRENGTH_KEY[dataset].split(".", 1)[1]))
    return {**(overrides or {}), STRENGTH_KEY[dataset]: (float(strength),), "data.n_train_per_env": n_total}


def strength_sweep(dataset: str, methods, strengths, seeds, root, scale: str = "default", overrides=None,
                   n_max: int = 2000, progress: bool = False) -> pd.DataFrame:
    """Train every (strength, method, seed) with one training environment of that strength (run_grid, reusing
    finished runs under root/strength=S) and analyze each run (`analyze_runs`); column `strength` added."""
    from .sweep import run_grid
    frames = []
    for s in strengths:
        over = single_env_overrides(dataset, s, scale, overrides)
        dirs = run_grid(dataset, methods, seeds, Path(root) / f"strength={s:g}", scale, over, progress=progress)
        frames.append(analyze_runs(dirs, n_max).assign(strength=s))
    return pd.concat(frames, ignore_index=True)


def conditions_sweep(dataset: str, methods, seeds, root, conditions: dict, scale: str = "default",
                     n_max: int = 2000, progress: bool = False) -> pd.DataFrame:
    """Train and analyze methods x seeds under each named condition {label: overrides} (runs reused under
    root/label); column `condition` added. Building block of the control, width and strength sweeps."""
    from .sweep import run_grid
    frames = []
    for label, over in conditions.items():
        dirs = run_grid(dataset, methods, seeds, Path(root) / str(label), scale, over, progress=progress)
        frames.append(analyze_runs(dirs, n_max).assign(condition=label))
    return pd.concat(frames, ignore_index=True)


def saliency_of_run(run_dir, task: str, n_max: int = 1000, output: str = "logit") -> np.ndarray:
    """Mean |input gradient| of `task` over the first n_max shifted-validation samples of a finished run
    (images: averaged over channels, shape (H, W))."""
    from .train import load_trained
    method, _, data = load_trained(run_dir)
    x, ys = inputs_of(data, data.val)
    sal = saliency(model_in_mask_coords(method.model, data), x[:n_max], ys[task][:n_max], task, output)
    return sal.mean(0) if sal.ndim == 3 else sal


def excess_over_control(df: pd.DataFrame, control: pd.DataFrame,
                        cols=("rho_spur", "flip_rate", "acc_drop")) -> pd.DataFrame:
    """Per (method, set): mean over seeds and tasks of each measure, its control value (zero correlation) and
    the excess = measure - control, the figure the claims are judged on."""
    keys = ["method", "set"]
    a = df.groupby(keys)[list(cols)].mean()
    b = control.groupby(keys)[list(cols)].mean()
    out = pd.concat({"correlated": a, "control": b, "excess": a - b}, axis=1)
    return out.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)


def direction_checks(corr: pd.DataFrame, control: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, the paper's two directions and their control-corrected versions, with the numbers behind them
    (shifted set; means over seeds and tasks): MTL val < STL val; ρ_spur MTL > STL; the same for the excess over
    the zero-correlation control, and for the counterfactual flip rate; MT-CRL's ρ_spur against MTL's."""
    rows = []
    for ds, d in corr[corr["set"] == "shifted"].groupby("dataset"):
        c = control[(control["set"] == "shifted") & (control.dataset == ds)]
        a, b = d.groupby("method").mean(numeric_only=True), c.groupby("method").mean(numeric_only=True)
        r = {"dataset": ds}
        for col in ("acc_val", "rho_spur", "flip_rate"):
            for m in ("stl", "mtl", "mtcrl"):
                if m in a.index:
                    r[f"{col} {m}"] = a.loc[m, col]
                if col != "acc_val" and m in b.index:
                    r[f"{col} {m} control"] = b.loc[m, col]
        r["MTL val < STL val"] = r["acc_val mtl"] < r["acc_val stl"]
        r["rho MTL > STL"] = r["rho_spur mtl"] > r["rho_spur stl"]
        for col, name in (("rho_spur", "rho"), ("flip_rate", "flip")):
            if {"stl", "mtl"} <= set(b.index):
                ex = {m: r[f"{col} {m}"] - r[f"{col} {m} control"] for m in ("stl", "mtl")}
                r[f"{name} excess stl"], r[f"{name} excess mtl"] = ex["stl"], ex["mtl"]
                r[f"{name} excess MTL > STL"] = ex["mtl"] > ex["stl"]
        if "mtcrl" in a.index:
            r["rho MT-CRL < MTL"] = r["rho_spur mtcrl"] < r["rho_spur mtl"]
            r["flip MT-CRL < MTL"] = r["flip_rate mtcrl"] < r["flip_rate mtl"]
        rows.append(r)
    return pd.DataFrame(rows).set_index("dataset").T


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {0.0 if np.isnan(std) else std:.3f}"


def table1(df: pd.DataFrame, with_paper: bool = True) -> pd.DataFrame:
    """The paper's Table 1 layout: rows acc_train, acc_val, rho_spur (+ flip rate and accuracy drop under the
    counterfactual, shifted set), columns (dataset, method); mean ± std over seeds of the mean over tasks, the
    paper's value beside ours where it has one."""
    d = df[df["set"] == "shifted"]
    per_seed = d.groupby(["dataset", "method", "seed"])[["acc_train", "acc_val", "rho_spur", "flip_rate",
                                                          "acc_drop"]].mean()
    g = per_seed.groupby(["dataset", "method"])
    mean, std, n = g.mean(), g.std(), g.size()
    out = {}
    for key in mean.index:
        col = {}
        for row in mean.columns:
            cell = _fmt(mean.loc[key, row], std.loc[key, row])
            paper = PAPER_TABLE1.get(key, {}).get(row)
            col[row] = f"{cell} (paper {paper:.3f})" if with_paper and paper is not None else cell
        col["n_seeds"] = str(n.loc[key])
        out[key] = col
    return pd.DataFrame(out)
