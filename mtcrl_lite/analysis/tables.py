"""The main results table (paper layout) and per-seed paired comparisons against vanilla MTL.

Each dataset notebook writes `results/<notebook>/tidy_results.csv` (see `results.tidy`); this module reads them,
computes, per seed, the relative improvement Δ of every method over vanilla MTL *of the same seed* (paired), and
prints "ours ± std (n seeds) | paper" per cell.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from mtcrl_lite.analysis.relative import relative_improvement
from mtcrl_lite.analysis.stats import mde_paired
from mtcrl_lite.baselines.methods import METHODS
from mtcrl_lite.core.tasks import HIGHER_IS_BETTER
from mtcrl_lite.data.catalogue import PAPER_COLUMNS, STAND_INS
from mtcrl_lite.paths import results_root

# the paper's columns, their runs' folders and the stand-ins (marked † in every table): the data catalogue's
DATASETS = list(PAPER_COLUMNS)
SOURCES = {column: e.folder for column, e in PAPER_COLUMNS.items()}
# The paper's main table (docs/METHOD §8, from the authors' slides): Δ over vanilla MTL in %.
PAPER = {
    "stl": [3.3, 0.2, -2.5, -2.4, -12.2, -2.7],
    "pcgrad": [4.5, 0.2, 3.1, 2.1, 7.4, 3.5],
    "gradvac": [4.6, 0.3, 3.5, 2.1, 7.2, 3.5],
    "dann": [4.1, 0.4, 1.2, 0.3, -0.4, 1.1],
    "irm": [5.0, 0.4, 1.1, 0.6, -0.1, 1.4],
    "mtcrl-nogirm": [5.9, 0.2, 3.2, 1.5, 4.3, 3.0],
    "mtcrl-norm": [7.8, 1.0, 6.5, 2.9, 8.0, 5.2],
    "mtcrl": [8.1, 1.1, 7.1, 2.8, 8.2, 5.5],
}

# the paper's rows in its table's order, and the methods added after it (notebook 10), by display name
ROWS = {m: METHODS[m].label for m in PAPER}
NEW_ROWS = {m.name: m.label for m in METHODS.values() if not m.paper and m.name != "mtl"}
assert {m.name for m in METHODS.values() if m.paper} == set(ROWS), "PAPER and the registry's paper rows differ"


def t975(df: int) -> float:
    """The two-sided 95 % Student t quantile with `df` degrees of freedom (scipy.stats.t)."""
    if df < 1:
        raise ValueError(f"a t interval needs df >= 1 (at least two seeds), got df = {df}")
    return float(student_t.ppf(0.975, df))


def per_seed_delta(
    df: pd.DataFrame, baseline: str = "mtl", selection: str = "best_val", split: str = "test", convention: str = "paper"
) -> pd.DataFrame:
    """One row per (method, seed): Δ in % of that run over the baseline run with the same seed."""
    d = df[(df.selection == selection) & (df.split == split) & (df.metric != "loss")]
    if "primary" not in d:
        d = d.assign(primary=d.metric == "acc")
    table = {}
    for (method, seed), g in d.groupby(["method", "seed"]):
        table[(method, seed)] = (
            {t: dict(zip(gt.metric, gt.value)) for t, gt in g.groupby("task")},
            {t: gt.metric[gt.primary.astype(bool)].iloc[0] for t, gt in g.groupby("task")},
        )
    rows = []
    for (method, seed), (values, primary) in table.items():
        if method == baseline or (baseline, seed) not in table:
            continue
        base = table[(baseline, seed)][0]
        hib = {t: {m: HIGHER_IS_BETTER[m] for m in ms} for t, ms in values.items()}
        rows.append(
            {"method": method, "seed": seed, "delta": relative_improvement(values, base, hib, convention, primary)}
        )
    return pd.DataFrame(rows, columns=["method", "seed", "delta"])


def paired_summary(deltas: pd.DataFrame) -> pd.DataFrame:
    """Mean Δ, std over seeds, n, the 95 % t confidence interval, whether it excludes 0, and the minimum
    detectable effect of n paired seeds at this spread (analysis.stats.mde_paired: α 0.05, power 0.8)."""
    out = []
    for method, g in deltas.groupby("method", sort=False):
        n, mean = len(g), float(g.delta.mean())
        std = float(g.delta.std(ddof=1)) if n > 1 else float("nan")
        half = t975(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
        verdict = (
            "n = 1: no interval"
            if n < 2
            else "better than MTL"
            if mean - half > 0
            else "worse than MTL"
            if mean + half < 0
            else "inside the noise"
        )
        out.append(
            {
                "method": method,
                "mean": mean,
                "std": std,
                "n": n,
                "ci95_low": mean - half,
                "ci95_high": mean + half,
                "verdict": verdict,
                "mde": mde_paired(std, n),
            }
        )
    if not out:
        return pd.DataFrame()
    table = pd.DataFrame(out).set_index("method")
    order = [m for m in ROWS if m in table.index] + [m for m in table.index if m not in ROWS]
    return table.loc[order]  # the paper's row order


def load_column(dataset: str, root=None) -> tuple[pd.DataFrame | None, bool]:
    """The tidy results of one main-table column and whether they come from a synthetic stand-in."""
    path = results_root(root) / SOURCES[dataset] / "tidy_results.csv"
    if not path.exists():
        return None, False
    df = pd.read_csv(path)
    names = df.dataset.astype(str)
    return df, bool((names.isin(STAND_INS) | names.str.contains("standin")).any())


def load_columns(root=None, record_path=None) -> tuple[dict[str, tuple[pd.DataFrame | None, bool]], str]:
    """Every main-table column from its notebook's run folders under `root` where they exist, else from the committed
    run record (results/record/runs.csv; selection best_val only); and a line that says which source each used."""
    from mtcrl_lite.analysis import record as R

    columns, used = {}, []
    try:
        rec = R.read(record_path)
    except FileNotFoundError:
        rec = None
    for name in DATASETS:
        df, stand_in = load_column(name, root)
        if df is None and rec is not None and (rec.study == SOURCES[name]).any():
            df = R.column(rec, SOURCES[name])
            stand_in = bool(df.dataset.isin(STAND_INS).any())
            used.append(f"{name}: record")
        elif df is not None:
            used.append(f"{name}: run folders")
        columns[name] = (df, stand_in)
    where = "; ".join(used) or "nothing: no run folders and no record"
    folders = results_root(root).resolve()
    shown = folders.relative_to(R.REPO_ROOT) if folders.is_relative_to(R.REPO_ROOT) else folders
    return columns, f"reading {where} (record: {R.RECORD.relative_to(R.REPO_ROOT)}, run folders: {shown})"


def main_table(columns: dict[str, tuple[pd.DataFrame | None, bool]], selection: str = "best_val") -> pd.DataFrame:
    """Rows = methods (paper order), columns = datasets + avg; cell 'ours ± std (n) | paper'.

    A dataset without results reads 'not run'; one computed on a synthetic stand-in is marked '†'.
    The average is over the datasets we ran (marked with how many, and † with the count of stand-ins among them).
    """
    cells = {r: {} for r in ROWS}
    means = {r: [] for r in ROWS}
    stand_ins = {r: 0 for r in ROWS}
    for j, name in enumerate(DATASETS):
        df, stand_in = columns.get(name, (None, False))
        summary = paired_summary(per_seed_delta(df, selection=selection)) if df is not None else pd.DataFrame()
        for method in ROWS:
            paper = f"{PAPER[method][j]:+.1f}"
            if method not in summary.index:
                cells[method][name] = f"not run | {paper}"
                continue
            s = summary.loc[method]
            spread = "" if math.isnan(s["std"]) else f" ± {s['std']:.1f}"
            cells[method][name] = f"{s['mean']:+.1f}{spread} (n={s['n']}){' †' if stand_in else ''} | {paper}"
            means[method].append(s["mean"])
            stand_ins[method] += stand_in
    for method in ROWS:
        ran, k = means[method], stand_ins[method]
        marked = f", {k} stand-in) †" if k else ")"
        ours = f"{np.mean(ran):+.1f} ({len(ran)}/5 datasets{marked}" if ran else "not run"
        cells[method]["avg"] = f"{ours} | {PAPER[method][-1]:+.1f}"
    return pd.DataFrame.from_dict(cells, orient="index").rename(index=ROWS)[DATASETS + ["avg"]]


def orderings(summary: pd.DataFrame) -> dict[str, bool]:
    """The paper's orderings, checked on mean Δ over MTL (only for methods present in `summary`)."""
    mean = summary["mean"].to_dict()
    out = {}
    for m in ("mtcrl", "mtcrl-norm", "mtcrl-nogirm"):
        if m in mean:
            out[f"{ROWS[m]} > MTL ({mean[m]:+.2f} %, {summary.loc[m, 'verdict']})"] = mean[m] > 0
    for m in ("mtcrl", "mtcrl-norm"):
        if m in mean and "mtcrl-nogirm" in mean:
            out[f"{ROWS[m]} > MT-CRL w/o G-IRM ({mean[m]:+.2f} vs {mean['mtcrl-nogirm']:+.2f})"] = (
                mean[m] > mean["mtcrl-nogirm"]
            )
    if "mtcrl" in mean:
        for b in ("stl", "pcgrad", "gradvac", "dann", "irm"):
            if b in mean:
                out[f"MT-CRL (Var) > {ROWS[b]} ({mean['mtcrl']:+.2f} vs {mean[b]:+.2f})"] = mean["mtcrl"] > mean[b]
    return out


def paired_by_variant(
    baseline: pd.DataFrame, variants: dict, method: str = "mtcrl", splits=("val", "test"), selection: str = "best_val"
) -> pd.DataFrame:
    """Paired Δ vs MTL of several variants of one method (e.g. hp.lr_graph values), on several splits.

    `baseline` holds the MTL runs; `variants` maps a label to the tidy results of that variant's runs (method
    `method`). One row per (label, split): mean, std, n, 95 % interval and verdict as in `paired_summary`."""
    rows = {}
    for label, d in variants.items():
        for split in splits:
            s = paired_summary(per_seed_delta(pd.concat([baseline, d]), selection=selection, split=split))
            if method in s.index:
                rows[(label, split)] = s.loc[method]
    return pd.DataFrame(rows).T.rename_axis(["variant", "split"])


def label(method: str) -> str:
    """The display name of a registry method (paper rows, newer methods, MTL)."""
    return METHODS[method].label if method in METHODS else method


def extended_table(columns: dict[str, pd.DataFrame], selection: str = "best_val") -> pd.DataFrame:
    """Rows = methods, columns = datasets: 'Δ ± std [95 % interval] (n)' of each method over MTL, paired by seed
    (`per_seed_delta`, `paired_summary`); MTL is the 0 row. Methods keep the order of their first appearance; a
    dataset without MTL runs reads 'no MTL baseline' for the methods that ran."""
    cells: dict[str, dict[str, str]] = {}
    for name, df in columns.items():
        if not (df.method == "mtl").any():
            for method in df.method.unique():
                cells.setdefault(method, {})[name] = "no MTL baseline"
            continue
        cells.setdefault("mtl", {})[name] = "0"
        s = paired_summary(per_seed_delta(df, selection=selection))
        for method, r in s.iterrows():
            cells.setdefault(method, {})[name] = (
                f"{r['mean']:+.2f} (n=1)"
                if r["n"] < 2
                else f"{r['mean']:+.2f} ± {r['std']:.2f} [{r['ci95_low']:+.2f}, {r['ci95_high']:+.2f}] (n={r['n']})"
            )
    table = pd.DataFrame.from_dict(cells, orient="index").reindex(columns=list(columns)).fillna("not run")
    return table.rename(index=label)


def seed_ranks(columns: dict[str, pd.DataFrame], selection: str = "best_val") -> pd.DataFrame:
    """One row per (dataset, seed, method): the method's rank by Δ over MTL (1 = best; MTL included at Δ = 0; ties
    share the mean rank). Only complete blocks are ranked: the seeds of a dataset at which every method that ran on
    that dataset ran, so that a missing run cannot move the others' ranks (a warning names what was left out)."""
    rows = []
    for name, df in columns.items():
        d = per_seed_delta(df, selection=selection)
        d = pd.concat([d, pd.DataFrame({"method": "mtl", "seed": sorted(d.seed.unique()), "delta": 0.0})])
        n_methods = d.method.nunique()
        complete = d.groupby("seed").method.nunique() == n_methods
        if not complete.all():
            warnings.warn(
                f"{name}: seeds {sorted(complete.index[~complete])} lack some of the {n_methods} methods "
                f"and are left out of the ranks",
                stacklevel=2,
            )
        for seed, g in d[d.seed.isin(complete.index[complete])].groupby("seed"):
            rows += [
                {"dataset": name, "seed": seed, "method": m, "delta": v, "rank": r, "n_methods": len(g)}
                for m, v, r in zip(g.method, g.delta, g.delta.rank(ascending=False))
            ]
    return pd.DataFrame(rows, columns=["dataset", "seed", "method", "delta", "rank", "n_methods"])


def average_rank(ranks: pd.DataFrame) -> pd.DataFrame:
    """Per method (registry names; `label` for display): mean rank over datasets (each dataset's mean over its
    seeds, so every dataset weighs the same), the spread of those per-dataset ranks (std), the spread over all
    (dataset, seed) cells, and each dataset's mean rank; best first."""
    per_dataset = ranks.groupby(["method", "dataset"])["rank"].mean().unstack("dataset")
    out = pd.DataFrame(
        {
            "mean_rank": per_dataset.mean(axis=1),
            "std_over_datasets": per_dataset.std(axis=1, ddof=1),
            "std_over_cells": ranks.groupby("method")["rank"].std(ddof=1),
            "n_datasets": per_dataset.notna().sum(axis=1),
        }
    ).join(per_dataset)
    return out.sort_values("mean_rank")


def head_to_head(
    columns: dict[str, pd.DataFrame], method: str = "mtcrl", others=(), selection: str = "best_val"
) -> pd.DataFrame:
    """Δ(method) − Δ(other) per dataset, paired by seed: mean, std, n and 95 % t interval (positive = `method`
    better). The Δs are relative improvements over the same MTL run, so their difference compares the two methods
    on the paper's scale. A pair without a common seed is left out."""
    rows = []
    for name, df in columns.items():
        d = per_seed_delta(df, selection=selection).pivot(index="seed", columns="method", values="delta")
        d["mtl"] = 0.0
        for other in others:
            if method not in d or other not in d:
                continue
            diff = (d[method] - d[other]).dropna()
            if diff.empty:
                continue
            s = paired_summary(pd.DataFrame({"method": f"{label(method)} − {label(other)}", "delta": diff}))
            rows.append({"dataset": name, "versus": label(other), **s.iloc[0].to_dict()})
    cols = ["dataset", "versus", "mean", "std", "n", "ci95_low", "ci95_high", "verdict"]
    out = pd.DataFrame(rows, columns=cols)
    out["verdict"] = out.verdict.str.replace("MTL", "the other")
    return out
