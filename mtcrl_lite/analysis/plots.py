"""The figures the notebooks show. Each function takes plain data and returns a matplotlib Figure; heatmaps and
spread over seeds are drawn with seaborn."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mtcrl_lite.analysis.tables import label
from mtcrl_lite.run.rundir import final_graphs


def image_grid(data, per_env: int = 8, seed: int = 0):
    """A row of example inputs for every training environment and the val/test splits, titled with labels."""
    splits = {**data.train_envs, "val": data.val, "test": data.test}
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(splits), per_env, figsize=(1.3 * per_env, 1.5 * len(splits)), squeeze=False)
    for row, (name, split) in zip(axes, splits.items()):
        for ax, i in zip(row, rng.choice(len(split), per_env, replace=False)):
            ax.imshow(split.x[i, 0], cmap="gray")
            ax.set_title("/".join(str(int(split.y[t.name][i])) for t in data.tasks), fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig


def learning_curves(df: pd.DataFrame, metric: str = "acc"):
    """Mean over seeds of `metric` against epoch: one panel per (task, split), one line per method.
    metric="primary": each task's primary metric (dense tasks differ: miou, abs_err, mean_angle, l1)."""
    d = df[(df.selection == "epoch") & (df.primary.astype(bool) if metric == "primary" else df.metric == metric)]
    tasks, splits = sorted(d.task.unique()), [s for s in ("train", "val", "test") if s in set(d.split)]
    methods = list(dict.fromkeys(d.method))
    curve = d.groupby(["task", "split", "method", "epoch"]).value.mean()
    fig, axes = plt.subplots(
        len(tasks), len(splits), figsize=(3.6 * len(splits) + 1.6, 2.6 * len(tasks)), squeeze=False, sharex=True
    )
    for r, task in enumerate(tasks):
        for c, split in enumerate(splits):
            ax = axes[r, c]
            for i, method in enumerate(methods):
                if (task, split, method) in curve.index.droplevel(3):
                    s = curve.loc[(task, split, method)]
                    ax.plot(s.index + 1, s.values, color=plt.cm.tab10(i % 10), label=method, lw=1.2)
            name = d[d.task == task].metric.iloc[0] if metric == "primary" else metric
            ax.set_title(f"{task} · {split} · {name}", fontsize=9)
            ax.set_xlabel("epoch" if r == len(tasks) - 1 else ""), ax.set_ylabel("")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / fig.get_figwidth(), 1))
    return fig


def routing_graphs(run_dirs, task_names):
    """Heatmaps of the routing graph A (task x module) at the selected epoch: rows = methods, columns = seeds."""
    runs = {}
    for cfg, a in final_graphs(run_dirs):
        runs.setdefault(cfg["method"], {})[cfg["seed"]] = np.array(a)
    if not runs:
        return None
    n_cols = max(len(v) for v in runs.values())
    k = max(a.shape[1] for v in runs.values() for a in v.values())  # columns wide enough for K numbers
    fig, axes = plt.subplots(
        len(runs),
        n_cols,
        figsize=((0.32 * k + 0.9) * n_cols + 1, len(runs) * (0.4 * len(task_names) + 1.0)),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.axis("off")
    for row, (method, by_seed) in zip(axes, runs.items()):
        for ax, (seed, a) in zip(row, sorted(by_seed.items())):
            ax.axis("on")
            sns.heatmap(
                a,
                vmin=0,
                vmax=1,
                cmap="viridis",
                annot=True,
                fmt=".2f",
                annot_kws={"fontsize": 6},
                cbar=False,
                square=True,
                ax=ax,
                yticklabels=task_names,
                xticklabels=[f"Z{k}" for k in range(a.shape[1])],
            )
            ax.set_title(f"{method} seed {seed}", fontsize=8)
            ax.tick_params(labelsize=7, rotation=0)
    fig.colorbar(plt.cm.ScalarMappable(plt.Normalize(0, 1), "viridis"), ax=axes.ravel().tolist(), shrink=0.8)
    return fig


def paired_deltas(deltas: pd.DataFrame, summary: pd.DataFrame, title: str = "", baseline: str = "vanilla MTL"):
    """Per-seed Δ over the baseline (dots) with the mean and its 95 % interval (bar), one row per method, named by
    its display name (`report.label`: registry keys such as "mtcrl" read "MT-CRL, G-IRM Var")."""
    methods = list(summary.index)
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(methods) + 1))
    for i, m in enumerate(methods):
        d = deltas[deltas.method == m].delta
        ax.plot(d, [i] * len(d), "o", color="C0", alpha=0.6)
        s = summary.loc[m]
        if not np.isnan(s["ci95_low"]):
            ax.plot([s["ci95_low"], s["ci95_high"]], [i, i], "-", color="C1", lw=2)
        ax.plot([s["mean"]], [i], "|", color="C1", ms=14, mew=2)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(methods)), [label(m) for m in methods])
    ax.set_xlabel(f"Δ over {baseline}, same seed (%)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


VERDICT_COLOURS = {"replicates": "C2", "partially": "C8", "does not replicate": "C3", "undecided": "C7"}


def claims_forest(table: pd.DataFrame):
    """The claims figure: one row per paired comparison (`experiments.claims.figure_table`): the mean Δ and its 95 %
    interval coloured by verdict, the paper's value (×), and the band ±MDE around 0 that the seeds cannot resolve."""
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(table), 1) + 1.3))
    for i, r in enumerate(table.itertuples()):
        colour = VERDICT_COLOURS.get(r.verdict, "k")
        ax.fill_betweenx([i - 0.3, i + 0.3], -r.mde, r.mde, color="0.9", lw=0)
        ax.plot([r.ci95_low, r.ci95_high], [i, i], "-", color=colour, lw=2.5)
        ax.plot([r.mean], [i], "o", color=colour, label=r.verdict)
        ax.plot([r.paper], [i], "x", color="k", ms=8, mew=2, label="paper")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(table)), [f"{r.claim}: {r.comparison} (n = {r.n})" for r in table.itertuples()])
    ax.invert_yaxis()
    handles = dict(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
    ax.legend(handles.values(), handles.keys(), fontsize=7, loc="lower right")
    ax.set_xlabel(
        "paired Δ (%) with its 95 % interval; ×: the paper's value\ngrey: ±MDE, what these seeds cannot resolve"
    )
    fig.tight_layout()
    return fig


def similarity_heatmap(s: np.ndarray, names: list[str], order=None, title: str = ""):
    """A task x task similarity matrix, rows and columns in `order` (e.g. interpret.spectral_order)."""
    order = np.arange(len(names)) if order is None else np.asarray(order)
    m = np.asarray(s)[np.ix_(order, order)]
    fig, ax = plt.subplots(figsize=(0.55 * len(names) + 2, 0.55 * len(names) + 1))
    labels = [names[i] for i in order]
    sns.heatmap(
        m,
        vmin=-1,
        vmax=1,
        cmap="RdBu_r",
        annot=True,
        fmt=".2f",
        annot_kws={"fontsize": 6},
        square=True,
        xticklabels=labels,
        yticklabels=labels,
        cbar_kws={"shrink": 0.8},
        ax=ax,
    )
    ax.tick_params(labelsize=8)
    ax.set_xticklabels(labels, rotation=60, ha="right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def counts_by_year(per_year: dict, splits: dict[str, tuple[float, float]], title: str = "", bin_years: int = 1):
    """Ratings per release year (summed over `bin_years`-year bins), one line per genre ({genre: {year: n}}), log
    scale (empty bins are gaps), the splits shaded ({name: (lo, hi)})."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for i, (genre, by_year) in enumerate(per_year.items()):
        binned: dict[int, int] = {}
        for y, n in by_year.items():
            b = int(y) // bin_years * bin_years
            binned[b] = binned.get(b, 0) + int(n)
        xs = sorted(binned)
        ax.plot(xs, [binned[x] if binned[x] > 0 else np.nan for x in xs], ".-", color=f"C{i}", label=genre, lw=1.2)
    ax.set_yscale("log")
    for j, (name, (lo, hi)) in enumerate(splits.items()):
        ax.axvspan(lo, hi, color=f"C{j}", alpha=0.1)
        ax.annotate(
            name, ((lo + hi) / 2, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8
        )
    ax.set_xlabel(f"release year{f' ({bin_years}-year bins)' if bin_years > 1 else ''}"), ax.set_ylabel("ratings")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=9, pad=14)
    fig.tight_layout()
    return fig


def label_image(kind: str, a: np.ndarray, n_classes: int = 10) -> tuple[np.ndarray, dict]:
    """(image, imshow kwargs) for one label or prediction of a dense task, channels first (C, H, W) or (H, W).

    segmentation: class colours (ignore = white; logits are arg-maxed); normal: (n + 1) / 2 as RGB; depth and
    pixel maps: one channel, grey or viridis. NaN (invalid) pixels show white."""
    a = np.asarray(a, dtype=float)
    if kind == "segmentation":
        lab = a.argmax(0) if a.ndim == 3 else a
        rgb = plt.cm.tab10(np.clip(lab, 0, None).astype(int) % 10)[..., :3]
        rgb[lab < 0] = 1.0
        return rgb, {}
    if kind == "normal":
        n = a / np.maximum(np.linalg.norm(np.nan_to_num(a), axis=0, keepdims=True), 1e-8)
        rgb = np.moveaxis((n + 1) / 2, 0, -1)
        return np.where(np.isnan(rgb), 1.0, np.clip(rgb, 0, 1)), {}
    img = a[0] if a.ndim == 3 else a
    return np.ma.masked_invalid(img), {"cmap": "viridis" if kind == "depth" else "gray"}


def _show(ax, img, kw, title=""):
    ax.imshow(img, interpolation="nearest", **kw)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def dense_panels(data, per_split: int = 2, seed: int = 0):
    """For every training environment, validation and test: `per_split` images with their label of every task."""
    splits = {**data.train_envs, "val": data.val, "test": data.test}
    rng = np.random.default_rng(seed)
    rows = [(name, int(i)) for name, s in splits.items() for i in rng.choice(len(s), per_split, replace=False)]
    fig, axes = plt.subplots(
        len(rows), 1 + len(data.tasks), figsize=(1.5 * (1 + len(data.tasks)), 1.5 * len(rows)), squeeze=False
    )
    for r, (row, (name, i)) in enumerate(zip(axes, rows)):
        x, y = splits[name][i]
        _show(row[0], np.moveaxis(x.numpy(), 0, -1), {}, "rgb" if r == 0 else "")
        row[0].set_ylabel(name, fontsize=8)
        for ax, t in zip(row[1:], data.tasks):
            _show(ax, *label_image(t.kind, y[t.name].numpy()), t.name if r == 0 else "")
    fig.tight_layout()
    return fig


def dense_predictions(x, y: dict, predictions: dict, tasks):
    """Input, ground truth and each model's prediction: one block of rows per image, one column per task.
    x: (N, 3, H, W) tensor; y: {task: (N, ...)}; predictions: {model name: {task: (N, ...)}}."""
    n, names = len(x), ["ground truth", *predictions]
    fig, axes = plt.subplots(
        n * len(names), 1 + len(tasks), figsize=(1.5 * (1 + len(tasks)), 1.5 * n * len(names)), squeeze=False
    )
    for i in range(n):
        for j, who in enumerate(names):
            row = axes[i * len(names) + j]
            if j == 0:
                _show(row[0], np.moveaxis(x[i].numpy(), 0, -1), {}, "input" if i == 0 else "")
            else:
                row[0].axis("off")
            row[0].set_ylabel(who, fontsize=8)
            row[1].set_ylabel(who, fontsize=8)
            src = y if j == 0 else predictions[who]
            for ax, t in zip(row[1:], tasks):
                _show(ax, *label_image(t.kind, src[t.name][i].detach().numpy()), t.name if i == j == 0 else "")
    fig.tight_layout()
    return fig


def strength_curve(scores: pd.DataFrame, title: str = ""):
    """Mean test score against the training correlation: one line per method (columns method, strength, value;
    one row per seed), bars = ± one standard deviation over seeds."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    sns.lineplot(
        scores,
        x="strength",
        y="value",
        hue="method",
        errorbar="sd",
        err_style="bars",
        marker="o",
        err_kws={"capsize": 3},
        ax=ax,
    )
    ax.set_xlabel("training label-label correlation (env0; env1 = 7/9 of it)")
    ax.set_ylabel("mean test accuracy (shifted)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def method_ranks(ranks: pd.DataFrame, order: list[str], title: str = ""):
    """Rank of every method (1 = best) per dataset and seed: one dot per (dataset, seed), coloured by dataset,
    and the mean over datasets (each dataset's mean rank weighs the same) as a black bar. `order`: rows, best first."""
    fig, ax = plt.subplots(figsize=(8.5, 0.35 * len(order) + 1.2))
    sns.stripplot(ranks, x="rank", y="method", hue="dataset", order=order, dodge=True, alpha=0.6, size=4, ax=ax)
    per_dataset = ranks.groupby(["method", "dataset"])["rank"].mean().groupby("method").mean()
    ax.scatter(
        per_dataset.reindex(order),
        range(len(order)),
        marker="|",
        s=300,
        color="black",
        zorder=3,
        label="mean over datasets",
    )
    ax.set(xlabel="rank among the methods (1 = best)", ylabel="", title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: no dot is hidden under it
    fig.tight_layout()
    return fig
