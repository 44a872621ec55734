import math

import pandas as pd
import pytest

from mtcrl_lite.analysis import tables as R


def tidy(rows):
    """rows: (method, seed, task, value) of test accuracy at the best_val selection."""
    return pd.DataFrame(
        [
            {
                "dataset": "multimnist",
                "method": m,
                "seed": s,
                "selection": "best_val",
                "split": "test",
                "task": t,
                "metric": "acc",
                "value": v,
                "primary": True,
            }
            for m, s, t, v in rows
        ]
    )


DF = tidy(
    [
        ("mtl", 0, "l", 0.50),
        ("mtl", 0, "r", 0.40),
        ("mtl", 1, "l", 0.60),
        ("mtl", 1, "r", 0.80),
        ("mtcrl", 0, "l", 0.55),
        ("mtcrl", 0, "r", 0.40),
        ("mtcrl", 1, "l", 0.60),
        ("mtcrl", 1, "r", 1.00),
        ("stl", 0, "l", 0.45),
        ("stl", 0, "r", 0.40),
    ]
)


def test_per_seed_delta_is_paired_with_the_same_seed():
    d = R.per_seed_delta(DF).set_index(["method", "seed"]).delta
    assert d[("mtcrl", 0)] == pytest.approx((10 + 0) / 2)  # +10 % on l, 0 on r
    assert d[("mtcrl", 1)] == pytest.approx((0 + 25) / 2)
    assert d[("stl", 0)] == pytest.approx(-5.0)
    assert ("mtl", 0) not in d.index


def test_paired_summary_interval_and_verdicts():
    s = R.paired_summary(R.per_seed_delta(DF))
    m = s.loc["mtcrl"]
    assert m["mean"] == pytest.approx(8.75) and m["n"] == 2
    half = 12.7062047 * m["std"] / math.sqrt(2)  # t(0.975, df = 1)
    assert m["ci95_low"] == pytest.approx(8.75 - half) and m["verdict"] == "inside the noise"
    assert s.loc["stl"]["verdict"] == "n = 1: no interval"
    assert list(s.index) == ["stl", "mtcrl"]  # the paper's row order
    clear = pd.DataFrame({"method": ["x"] * 3, "seed": [0, 1, 2], "delta": [2.0, 2.1, 1.9]})
    assert R.paired_summary(clear).loc["x"]["verdict"] == "better than MTL"


def test_main_table_layout_not_run_and_stand_in_marks():
    table = R.main_table({"Multi-MNIST": (DF, False), "NYUv2": (DF.assign(dataset="nyuv2-standin"), True)})
    assert list(table.columns) == R.DATASETS + ["avg"]
    assert list(table.index) == list(R.ROWS.values())
    var = table.loc["MT-CRL, G-IRM Var"]
    assert var["Multi-MNIST"].startswith("+8.8 ± ") and var["Multi-MNIST"].endswith("(n=2) | +8.1")
    assert "†" in var["NYUv2"] and "†" not in var["Multi-MNIST"]
    assert var["MovieLens"] == "not run | +1.1"
    assert table.loc["PCGrad"]["Multi-MNIST"] == "not run | +4.5"
    assert var["avg"] == "+8.8 (2/5 datasets, 1 stand-in) † | +5.5"  # an average over a stand-in is marked too
    real = R.main_table({"Multi-MNIST": (DF, False)}).loc["MT-CRL, G-IRM Var", "avg"]
    assert real == "+8.8 (1/5 datasets) | +5.5"


def test_orderings_report_each_claim():
    s = R.paired_summary(R.per_seed_delta(DF))
    checks = R.orderings(s)
    assert len(checks) == 2
    (claim_mtl, ok_mtl), (claim_stl, ok_stl) = checks.items()
    assert claim_mtl.startswith("MT-CRL, G-IRM Var > MTL (+8.75 %") and ok_mtl
    assert "Single-task" in claim_stl and ok_stl


def test_sweep_summary_formats_mean_std_and_counts():
    from mtcrl_lite.grid.sweep import summary

    df = DF.assign(selection="best_val")
    t = summary(df)
    assert t.loc["mtcrl", ("test", "r")] == "0.700 ± 0.424"  # mean and sample std of 0.40, 1.00
    assert t.loc["stl", ("n_seeds", "")] == 1 and t.loc["stl", ("test", "l")] == "0.450 ± 0.000"
    assert list(t.index) == ["mtl", "mtcrl", "stl"]


def test_paired_by_variant_pairs_each_variant_with_the_baseline_runs():
    base = DF[DF.method == "mtl"]
    fast = tidy([("mtcrl", 0, "l", 0.60), ("mtcrl", 0, "r", 0.40), ("mtcrl", 1, "l", 0.60), ("mtcrl", 1, "r", 0.80)])
    table = R.paired_by_variant(base, {"lr 1": DF[DF.method == "mtcrl"], "lr 30": fast}, splits=("test",))
    assert table.loc[("lr 1", "test"), "mean"] == pytest.approx(8.75)
    assert table.loc[("lr 30", "test"), "mean"] == pytest.approx((20 + 0) / 2 / 2)  # +20 % on l at seed 0 only
    assert list(table.index.names) == ["variant", "split"]


def test_t_quantile_matches_the_printed_tables_and_refuses_df_0():
    # two-sided 95 %: the printed t table's 12.706 (df 1), 2.776 (df 4), 2.042 (df 30), 1.984 (df 100, not 1.96)
    for df, q in [(1, 12.706), (4, 2.776), (30, 2.042), (100, 1.984)]:
        assert R.t975(df) == pytest.approx(q, abs=5e-4)
    with pytest.raises(ValueError, match="df >= 1"):
        R.t975(0)


DF2 = tidy(
    [
        ("mtl", 0, "l", 0.50),
        ("mtl", 0, "r", 0.50),
        ("mtcrl", 0, "l", 0.50),
        ("mtcrl", 0, "r", 0.50),
        ("upgrad", 0, "l", 0.55),
        ("upgrad", 0, "r", 0.55),
    ]
)


def test_extended_table_cells_not_run_and_labels():
    t = R.extended_table({"A": DF, "B": DF2})
    assert list(t.columns) == ["A", "B"] and list(t.index) == ["MTL", "Single-task", "MT-CRL, G-IRM Var", "UPGrad"]
    std = math.sqrt(((5 - 8.75) ** 2 + (12.5 - 8.75) ** 2) / 1)
    half = 12.7062047 * std / math.sqrt(2)
    assert t.loc["MT-CRL, G-IRM Var", "A"] == f"+8.75 ± {std:.2f} [{8.75 - half:+.2f}, {8.75 + half:+.2f}] (n=2)"
    assert t.loc["Single-task", "A"] == "-5.00 (n=1)" and t.loc["Single-task", "B"] == "not run"
    assert t.loc["UPGrad", "B"] == "+10.00 (n=1)" and t.loc["MTL", "B"] == "0"


def test_ranks_per_seed_include_mtl_and_share_ties_on_complete_blocks_only():
    with pytest.warns(UserWarning, match=r"A: seeds \[1\] lack some of the 3 methods"):
        r = R.seed_ranks({"A": DF, "B": DF2}).set_index(["dataset", "seed", "method"])["rank"]
    assert (r["A", 0, "mtcrl"], r["A", 0, "mtl"], r["A", 0, "stl"]) == (1, 2, 3)
    assert ("A", 1, "mtcrl") not in r.index  # stl has no seed 1: block left out
    assert (r["B", 0, "upgrad"], r["B", 0, "mtcrl"], r["B", 0, "mtl"]) == (1, 2.5, 2.5)


def test_average_rank_weighs_datasets_equally():
    a = R.average_rank(R.seed_ranks({"A": DF[DF.seed == 0], "B": DF2, "C": DF2.assign(dataset="c")}))
    v = a.loc["mtcrl"]  # ranks: A 1, B 2.5, C 2.5
    assert v["mean_rank"] == pytest.approx((1 + 2.5 + 2.5) / 3) and v["n_datasets"] == 3
    assert v["std_over_datasets"] == pytest.approx(pd.Series([1, 2.5, 2.5]).std())
    assert a.loc["mtl", "A"] == 2 and a.loc["mtl", "B"] == 2.5 and a.loc["stl", "n_datasets"] == 1
    assert list(a.index[:2]) == ["upgrad", "mtcrl"]  # sorted by mean rank
    seed1 = tidy([("mtl", 1, "l", 0.5), ("mtcrl", 1, "l", 0.6), ("upgrad", 1, "l", 0.7)])  # mtcrl ranks 2
    seeds = R.average_rank(R.seed_ranks({"A": pd.concat([DF2, seed1])}))
    assert seeds.loc["mtcrl", "std_over_cells"] == pytest.approx(pd.Series([2.5, 2.0]).std())


def test_head_to_head_is_the_paired_difference_of_deltas():
    h = R.head_to_head({"A": DF, "B": DF2}, "mtcrl", ["stl", "mtl", "upgrad"]).set_index(["dataset", "versus"])
    assert h.loc[("A", "Single-task"), "mean"] == pytest.approx(10.0) and h.loc[("A", "Single-task"), "n"] == 1
    assert h.loc[("A", "MTL"), "mean"] == pytest.approx(8.75) and h.loc[("A", "MTL"), "n"] == 2
    assert h.loc[("B", "UPGrad"), "mean"] == pytest.approx(-10.0)
    assert ("A", "UPGrad") not in h.index and ("B", "Single-task") not in h.index
    assert h.loc[("A", "MTL"), "verdict"] == "inside the noise"


def test_head_to_head_skips_methods_without_a_common_seed():
    apart = pd.concat(
        [
            DF2[DF2.method != "upgrad"],
            DF2[DF2.method == "upgrad"].assign(seed=1),
            DF2[DF2.method == "mtl"].assign(seed=1),
        ]
    )
    assert R.head_to_head({"B": apart}, "mtcrl", ["upgrad"]).empty


def test_extended_table_says_when_a_dataset_has_no_mtl_runs():
    t = R.extended_table({"A": DF, "B": DF2[DF2.method != "mtl"]})
    assert t.loc["UPGrad", "B"] == "no MTL baseline" and t.loc["MTL", "B"] == "not run"
