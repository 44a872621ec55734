"""The seaborn figures show the numbers they are given (means over seeds, heatmap annotations in order)."""

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd

from mtcrl_lite.analysis import plots


def test_strength_curve_draws_the_mean_over_seeds_per_method():
    scores = pd.DataFrame(
        {
            "method": ["STL"] * 4 + ["MTL"] * 4,
            "strength": [0.0, 0.0, 0.9, 0.9] * 2,
            "value": [0.90, 0.94, 0.80, 0.84, 0.92, 0.92, 0.60, 0.70],
        }
    )
    fig = plots.strength_curve(scores)
    lines = [l for l in fig.axes[0].get_lines() if l.get_label().startswith("_child")]  # one per method
    assert sorted(tuple(np.round(l.get_ydata().astype(float), 6)) for l in lines) == [(0.92, 0.65), (0.92, 0.82)]
    bars = [np.asarray(l.get_ydata(), float) for l in fig.axes[0].get_lines() if l.get_label() == "_nolegend_"]
    assert any(np.allclose(b, [0.92 - 0.02 * 2**0.5, 0.82 - 0.02 * 2**0.5]) for b in bars)  # ± one sd
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["STL", "MTL"]


def test_similarity_heatmap_annotates_the_reordered_matrix():
    s = np.array([[1.0, 0.2, -0.5], [0.2, 1.0, 0.3], [-0.5, 0.3, 1.0]])
    fig = plots.similarity_heatmap(s, ["a", "b", "c"], order=[2, 0, 1])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [f"{v:.2f}" for v in s[np.ix_([2, 0, 1], [2, 0, 1])].ravel()]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["c", "a", "b"]


def test_method_ranks_marks_the_mean_over_datasets_in_the_given_order():
    ranks = pd.DataFrame(
        {
            "dataset": ["A", "A", "A", "A", "B", "B"],
            "seed": [0, 0, 1, 1, 0, 0],
            "method": ["x", "y", "x", "y", "x", "y"],
            "rank": [1.0, 2.0, 2.0, 1.0, 1.0, 2.0],
        }
    )
    fig = plots.method_ranks(ranks, ["x", "y"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]
    means = [c for c in ax.collections if c.get_label() == "mean over datasets"][0].get_offsets()
    # x: A mean 1.5, B 1 -> 1.25; y: A 1.5, B 2 -> 1.75 (each dataset weighs the same, not each seed)
    assert np.allclose(np.asarray(means), [[1.25, 0], [1.75, 1]])


def test_method_ranks_keeps_its_legend_outside_the_dots():
    ranks = pd.DataFrame({"dataset": ["A", "A"], "seed": [0, 0], "method": ["x", "y"], "rank": [1.0, 2.0]})
    fig = plots.method_ranks(ranks, ["x", "y"])
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    assert legend.x0 >= fig.axes[0].get_window_extent().x1


def test_paired_deltas_names_rows_by_display_name_with_mean_and_interval():
    deltas = pd.DataFrame({"method": ["mtcrl", "mtcrl", "my-method", "my-method"], "delta": [1.0, 3.0, -1.0, -1.0]})
    summary = pd.DataFrame(
        {"mean": [2.0, -1.0], "ci95_low": [0.5, float("nan")], "ci95_high": [3.5, float("nan")]},
        index=["mtcrl", "my-method"],
    )
    ax = plots.paired_deltas(deltas, summary).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["MT-CRL, G-IRM Var", "my-method"]  # unknown keys as given
    drawn = [(tuple(l.get_xdata()), tuple(l.get_ydata())) for l in ax.get_lines()]
    assert ((1.0, 3.0), (0, 0)) in drawn and ((0.5, 3.5), (0, 0)) in drawn and ((2.0,), (0,)) in drawn
    assert sorted(x for x, y in drawn if y[0] == 1) == [(-1.0,), (-1.0, -1.0)]  # NaN interval: dots and mean only
