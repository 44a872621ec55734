"""Experiments on spurious-feature reliance (notebook 02): trained runs analyzed with the measures of
`mtcrl_lite.analysis.reliance` on the datasets' spurious features (`mtcrl_lite.experiments.reliance_data`),
controls, sweeps and tables.

* `analyze_run` / `analyze_runs`: ρ_spur and counterfactual measures per (task, set) of finished runs (cached CSVs).
* `single_env_overrides`: the one-environment control (e.g. zero correlation) at the default training-set size.
* `strength_sweep`, `conditions_sweep`: train (`sweep.run_grid`) and analyze over strengths or named conditions.
* `saliency_of_run`: a finished run's saliency map of one task.
* `excess_over_control`, `direction_checks`, `table1` (with `PAPER_TABLE1`): the tables the claims are judged on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtcrl_lite.analysis.reliance import counterfactual, rho_spur, saliency
from mtcrl_lite.experiments.reliance_data import TWO_HALVES, iid_split, inputs_of, model_in_mask_coords, spurious_mask

# The paper's Table 1 (docs/METHOD §8): (dataset, method) -> {row: value}.
PAPER_TABLE1 = {
    ("multisem", "stl"): {"acc_train": 0.931, "acc_val": 0.906, "rho_spur": 0.128},
    ("multisem", "mtl"): {"acc_train": 0.936, "acc_val": 0.882, "rho_spur": 0.246},
    ("multimnist", "stl"): {"acc_train": 0.981, "acc_val": 0.874, "rho_spur": 0.261},
    ("multimnist", "mtl"): {"acc_train": 0.987, "acc_val": 0.846, "rho_spur": 0.328},
}


def analyze_run(run_dir, n_max: int = 2000, output: str = "logit", seed: int = 0) -> pd.DataFrame:
    """ρ_spur and the counterfactual measures of every task of one finished run, on the shifted validation split
    and on an in-distribution split; with the run's train and validation accuracy at the selected epoch.
    One row per (task, set)."""
    from mtcrl_lite.run.rundir import final_line
    from mtcrl_lite.run.train import load_trained

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
            rows.append(
                {
                    "dataset": cfg.dataset,
                    "method": cfg.method,
                    "seed": cfg.seed,
                    "task": t.name,
                    "set": name,
                    "rho_spur": rho_spur(model, x, y, t.name, mask, output),
                    **cf,
                    "acc_train": final["metrics"]["train"][t.name]["acc"],
                    "acc_val": final["metrics"]["val"][t.name]["acc"],
                    "acc_test": final["metrics"]["test"][t.name]["acc"],
                    "run_dir": str(run_dir),
                }
            )
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
STRENGTH_KEY = {"multisem": "data.train_mc", **{name: "data.train_corrs" for name in TWO_HALVES}}
NO_CORRELATION = {"multisem": 0.5, **{name: 0.0 for name in TWO_HALVES}}


def single_env_overrides(dataset: str, strength: float, scale: str, overrides=None) -> dict:
    """Overrides for ONE training environment of the given strength holding as many samples as the scale's
    default environments together (so a sweep over strength keeps the training-set size fixed)."""
    from mtcrl_lite.run.config import make_config

    base = make_config(dataset, "mtl", 0, scale, overrides)
    n_total = base.data.n_train_per_env * len(getattr(base.data, STRENGTH_KEY[dataset].split(".", 1)[1]))
    return {**(overrides or {}), STRENGTH_KEY[dataset]: (float(strength),), "data.n_train_per_env": n_total}


def strength_sweep(
    dataset: str,
    methods,
    strengths,
    seeds,
    root,
    scale: str = "default",
    overrides=None,
    n_max: int = 2000,
    progress: bool = False,
) -> pd.DataFrame:
    """Train every (strength, method, seed) with one training environment of that strength (run_grid, reusing
    finished runs under root/strength=S) and analyze each run (`analyze_runs`); column `strength` added."""
    from mtcrl_lite.grid.sweep import run_grid

    frames = []
    for s in strengths:
        over = single_env_overrides(dataset, s, scale, overrides)
        dirs = run_grid(dataset, methods, seeds, Path(root) / f"strength={s:g}", scale, over, progress=progress)
        frames.append(analyze_runs(dirs, n_max).assign(strength=s))
    return pd.concat(frames, ignore_index=True)


def conditions_sweep(
    dataset: str,
    methods,
    seeds,
    root,
    conditions: dict,
    scale: str = "default",
    n_max: int = 2000,
    progress: bool = False,
) -> pd.DataFrame:
    """Train and analyze methods x seeds under each named condition {label: overrides} (runs reused under
    root/label); column `condition` added. Building block of the control, width and strength sweeps."""
    from mtcrl_lite.grid.sweep import run_grid

    frames = []
    for label, over in conditions.items():
        dirs = run_grid(dataset, methods, seeds, Path(root) / str(label), scale, over, progress=progress)
        frames.append(analyze_runs(dirs, n_max).assign(condition=label))
    return pd.concat(frames, ignore_index=True)


def saliency_of_run(run_dir, task: str, n_max: int = 1000, output: str = "logit") -> np.ndarray:
    """Mean |input gradient| of `task` over the first n_max shifted-validation samples of a finished run
    (images: averaged over channels, shape (H, W))."""
    from mtcrl_lite.run.train import load_trained

    method, _, data = load_trained(run_dir)
    x, ys = inputs_of(data, data.val)
    sal = saliency(model_in_mask_coords(method.model, data), x[:n_max], ys[task][:n_max], task, output)
    return sal.mean(0) if sal.ndim == 3 else sal


def excess_over_control(
    df: pd.DataFrame, control: pd.DataFrame, cols=("rho_spur", "flip_rate", "acc_drop")
) -> pd.DataFrame:
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
    per_seed = d.groupby(["dataset", "method", "seed"])[
        ["acc_train", "acc_val", "rho_spur", "flip_rate", "acc_drop"]
    ].mean()
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
