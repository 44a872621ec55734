"""The MT-CRL design space and its controls (notebook 08): named conditions, trained under one protocol, compared
paired by seed, with the mechanism measured beside the accuracy.

A condition is (method, overrides) under a label. Every condition of one study runs on the same seeds and the same
data, so Δ vs a reference condition (architecture-matched MTL by default) is paired by seed.

* `DESIGN`: the Multi-MNIST design space of issue #11 (module form, head reading, gate, lr_graph, λ's, K, G-IRM,
  environments) with the baselines it is judged against (STL, plain and matched MTL, the frozen-A control).
* `run_conditions`: train every (condition, seed), runs reused under root/<slug>/...; `labelled` relabels the
  tidy results so that `report.per_seed_delta` pairs conditions like methods.
* `exclusive_share`, `mechanism`: what the learned graph does (does a task drop the other task's modules?) and
  ρ_spur / counterfactual flip rate (spurious_experiments.analyze_runs).
* `convergence`: selected epoch against the epoch budget, and the validation gain left in the last 20 % of epochs.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .config import make_config
from .results import collect, final_line, read_json, read_jsonl

# label -> (method, overrides on top of the dataset's preset and tuned values). Order = table order.
BASELINES = {
    "STL": ("stl", {}),
    "MTL (plain)": ("mtl", {"model.module_norm": "none"}),
    "MTL (matched)": ("mtl", {}),
}
DESIGN = {
    "MT-CRL": ("mtcrl", {}),
    "frozen A": ("mtcrl", {"hp.graph_trainable": False}),
    "no normalisation": ("mtcrl", {"model.module_norm": "none"}),
    "lr_graph 1": ("mtcrl", {"hp.lr_graph": 1.0}),
    "sum reading": ("mtcrl", {"model.head_read": "sum"}),
    "hard gate": ("mtcrl", {"model.gate": "hard"}),
    "experts": ("mtcrl", {"model.module_form": "experts"}),
    "λ_dec 0": ("mtcrl", {"hp.lambda_dec": 0.0}),
    "λ_dec 1": ("mtcrl", {"hp.lambda_dec": 1.0}),
    "λ_sps 0.1": ("mtcrl", {"hp.lambda_sps": 0.1}),
    "K = 2": ("mtcrl", {"model.n_modules": 2}),
    "K = 8": ("mtcrl", {"model.n_modules": 8}),
    "G-IRM off": ("mtcrl-nogirm", {}),
    "G-IRM Norm": ("mtcrl-norm", {}),
    "random envs": ("mtcrl", {"train.envs": "random"}),
}


def slug(label: str) -> str:
    """A directory name for a label: 'λ_dec 0' -> 'lambda_dec_0', 'MTL (plain)' -> 'MTL_plain'."""
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", label.replace("λ", "lambda").replace("=", "")).strip("_")
    if not s:
        raise ValueError(f"label {label!r} has no characters usable in a directory name")
    return s


def run_conditions(dataset: str, conditions: dict, seeds, root, scale: str = "default", overrides=None,
                   jobs: int = 1, force: bool = False, progress: bool = True) -> dict[str, list[Path]]:
    """Train every (condition, seed) (configs validated before any run) -> {label: run directories}."""
    from .sweep import run_configs, run_dir
    if len({slug(label) for label in conditions}) != len(conditions):
        raise ValueError(f"two labels of {list(conditions)} map to the same directory name")
    plan = []
    for label, (method, over) in conditions.items():
        for s in seeds:
            cfg = make_config(dataset, method, s, scale, {**(overrides or {}), **over})
            plan.append((label, cfg, run_dir(Path(root) / slug(label), cfg)))
    dirs = run_configs([p[1] for p in plan], [p[2] for p in plan], force, progress, jobs=jobs,
                       desc=f"{dataset} conditions")
    out: dict[str, list[Path]] = {label: [] for label in conditions}
    for (label, _, _), d in zip(plan, dirs):
        out[label].append(d)
    return out


def labelled(dirs: dict[str, list[Path]]) -> pd.DataFrame:
    """Tidy results of every condition with `method` set to the condition's label (the registry name kept in
    `registry_method`), so that report.per_seed_delta / paired_summary pair conditions by seed."""
    frames = [collect(ds).assign(condition=label) for label, ds in dirs.items()]
    df = pd.concat(frames, ignore_index=True)
    return df.rename(columns={"method": "registry_method"}).assign(method=df["condition"])


def exclusive_share(a, off: float = 0.1, on: float = 0.9) -> float:
    """Share of modules that the graph gives to some task (A > on) while cutting another off (A < off):
    1 when every module serves some tasks and is dropped by the others, 0 when every task reads every module."""
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"need a T x K graph with T >= 2, got shape {a.shape}")
    return float(((a.max(0) > on) & (a.min(0) < off)).mean())


def mechanism(dirs: dict[str, list[Path]], n_max: int = 2000) -> pd.DataFrame:
    """Per condition (mean over seeds): exclusive_share of the final graph, mean A, and ρ_spur / flip rate /
    accuracy drop of the counterfactual swap on the shifted validation set (mean over tasks)."""
    from .spurious_experiments import analyze_runs
    rows = []
    for label, ds in dirs.items():
        spur = analyze_runs(ds, n_max)
        spur = spur[spur["set"] == "shifted"].groupby("seed")[["rho_spur", "flip_rate", "acc_drop"]].mean()
        for d in ds:
            seed = read_json(Path(d) / "config.json")["seed"]
            a = final_line(d).get("A")
            rows.append({"condition": label, "seed": seed, **spur.loc[seed].to_dict(),
                         "A_mean": float(np.mean(a)) if a is not None else np.nan,
                         "exclusive": exclusive_share(a) if a is not None else np.nan})
    return pd.DataFrame(rows).groupby("condition", sort=False).mean(numeric_only=True).drop(columns="seed")


def convergence(run_dirs, tail: float = 0.2) -> pd.DataFrame:
    """One row per run: epochs, validation-selected epoch (0-based) and its share of the budget, the mean
    validation score (primary metrics) at the selected epoch and the best before the last `tail` of the epochs,
    and `tail_gain` = their difference (what training past 80 % of the budget still bought)."""
    rows = []
    for d in run_dirs:
        cfg = read_json(Path(d) / "config.json")
        lines = read_jsonl(Path(d) / "results.jsonl")
        final = lines[-1]
        primary = final["primary"]
        scores = [float(np.mean([e["metrics"]["val"][t][m] for t, m in primary.items()]))
                  for e in lines if e["kind"] == "epoch"]
        sign = -1.0 if final.get("lower_is_better") else 1.0
        n, cut = len(scores), max(1, int(round(len(scores) * (1 - tail))))
        best_before = max(scores[:cut], key=lambda v: sign * v)
        sel = final["selected_epoch"]
        rows.append({"method": cfg["method"], "seed": cfg["seed"], "epochs": n, "selected_epoch": sel,
                     "selected_share": (sel + 1) / n, "val_selected": scores[sel],
                     "val_best_before_tail": best_before, "tail_gain": sign * (scores[sel] - best_before),
                     "run_dir": str(d)})
    return pd.DataFrame(rows)
