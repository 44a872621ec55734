"""The run record (analysis.record) and the statistics beside every verdict (analysis.stats): exact values on
hand-computed examples and published sample sizes, and the record giving the same tables as the run folders."""

import math
import shutil

import numpy as np
import pandas as pd
import pytest

from mtcrl_lite.analysis import record as R
from mtcrl_lite.analysis.stats import mde_paired, power_paired, probability_of_improvement, seeds_for_mde
from mtcrl_lite.analysis.tables import paired_summary, per_seed_delta
from mtcrl_lite.run import train as T
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.rundir import CorruptFileError, collect, final_line

# ---- minimum detectable effect -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dz, n", [(1.0, 10), (0.5, 34)])
def test_seeds_for_an_effect_match_the_published_paired_t_sample_sizes(dz, n):
    """G*Power / Cohen (1988), paired t test, two-sided alpha 0.05, power 0.8: dz = 1 needs 10 pairs, 0.5 needs 34."""
    assert seeds_for_mde(sd=2.0, mde=2.0 * dz) == n
    assert mde_paired(2.0, n) <= 2.0 * dz < mde_paired(2.0, n - 1)


def test_mde_is_the_effect_detected_with_the_asked_power_and_tends_to_the_normal_formula():
    mde = mde_paired(1.5, 5)
    assert power_paired(mde, 1.5, 5) == pytest.approx(0.8, abs=1e-9)
    assert power_paired(0.0, 1.5, 5) == pytest.approx(0.05, abs=1e-9)  # no effect: the test's level
    z = 1.959964 + 0.841621  # z_{0.975} + z_{0.8}
    assert mde_paired(1.0, 4000) * math.sqrt(4000) == pytest.approx(z, rel=1e-3)
    assert math.isnan(mde_paired(1.0, 1)) and math.isnan(mde_paired(0.0, 5)) and math.isnan(mde_paired(float("nan"), 5))


def test_paired_summary_reports_the_mde_of_its_seeds():
    deltas = pd.DataFrame({"method": "mtcrl", "seed": range(5), "delta": [1.0, 2.0, 0.0, 1.5, 0.5]})
    row = paired_summary(deltas).loc["mtcrl"]
    assert row["mde"] == pytest.approx(mde_paired(float(np.std([1, 2, 0, 1.5, 0.5], ddof=1)), 5))


# ---- probability of improvement -------------------------------------------------------------------------------------


def test_probability_of_improvement_on_hand_computed_examples():
    # x - y over all 9 pairs: (1 vs 2,2,2) 3 losses, (2 vs 2,2,2) 3 ties, (3 vs 2,2,2) 3 wins -> (0 + 1.5 + 3) / 9
    p, low, high = probability_of_improvement({"a": [1, 2, 3]}, {"a": [2, 2, 2]})
    assert p == pytest.approx(0.5) and low <= p <= high
    # dataset a: 2 wins of 4 pairs; dataset b: 4 of 4 -> mean 0.75; b alone is a certain win, whatever the resample
    p, _, _ = probability_of_improvement({"a": [1, 2], "b": [5, 5]}, {"a": [0, 3], "b": [1, 1]})
    assert p == pytest.approx(0.75)
    assert probability_of_improvement({"b": [5, 5]}, {"b": [1, 1]}) == (1.0, 1.0, 1.0)
    # lower is better (RMSE): the same numbers, the other way round
    assert probability_of_improvement({"b": [5, 5]}, {"b": [1, 1]}, higher_is_better=False)[0] == 0.0


def test_probability_of_improvement_matches_rliables_on_a_fixed_example():
    """rliable (Agarwal et al. 2021; pinned, installed without its bootstrap's dependencies) on runs x datasets."""
    from rliable import metrics as rliable

    rng = np.random.default_rng(7)
    x, y = rng.normal(0.5, 0.1, (6, 3)).round(2), rng.normal(0.47, 0.1, (6, 3)).round(2)  # rounding makes ties
    ours, _, _ = probability_of_improvement({d: x[:, d] for d in range(3)}, {d: y[:, d] for d in range(3)})
    assert ours == pytest.approx(float(rliable.probability_of_improvement(x, y)), abs=1e-12)
    assert (x[:, None, :] == y[None, :, :]).any()  # ties within a dataset, where two definitions could differ


def test_probability_of_improvement_interval_is_seeded_and_checks_pairing():
    x, y = {"a": [0.1, 0.5, 0.2, 0.9]}, {"a": [0.3, 0.4, 0.1, 0.2]}
    assert probability_of_improvement(x, y, seed=3) == probability_of_improvement(x, y, seed=3)
    with pytest.raises(ValueError, match="pair them by seed"):
        probability_of_improvement({"a": [1, 2]}, {"a": [1]})
    with pytest.raises(ValueError, match="at least one dataset"):
        probability_of_improvement({"a": [1]}, {"b": [1]})


# ---- the record ----------------------------------------------------------------------------------------------------

SMALL = {"train.batch_size": 32, "train.epochs": 2, "model.channels": (4,), "model.width": 8}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    dirs = []
    for method in ("mtl", "mtcrl"):
        for seed in (0, 1):
            cfg = make_config("debug", method, seed, overrides=SMALL)
            dirs.append(T.run(cfg, root / "06_study" / method / f"seed{seed}-{cfg.digest()}", progress=False))
    cfg = make_config("debug", "mtl", 0, overrides={**SMALL, "model.module_norm": "none"})
    T.run(cfg, root / "06_study" / "plain" / "mtl" / f"seed0-{cfg.digest()}", progress=False)
    return root, dirs


def test_record_rows_hold_the_final_lines_numbers(runs):
    root, dirs = runs
    table = R.build(root)
    assert list(table.columns) == R.COLUMNS and table.run.nunique() == 5 and len(table) == 10  # 2 tasks each
    plain = table[table.variant == "plain"]
    assert len(plain) == 2 and set(plain.method) == {"mtl"}
    one = table[(table.method == "mtcrl") & (table.seed == 1) & (table.variant == "")].set_index("task")
    tidy = collect([dirs[3]])
    best = tidy[(tidy.selection == "best_val") & tidy.primary.astype(bool)].set_index(["split", "task"]).value
    for task in one.index:
        assert one.loc[task, "val"] == best[("val", task)] and one.loc[task, "test"] == best[("test", task)]
    assert one.A_min.le(one.A_max).all() and table[table.method == "mtl"].A_mean.isna().all()
    assert set(table.provenance) == {"defaults"} and set(table.study) == {"06_study"}


def test_record_reads_the_largest_cached_reliance_analysis_of_the_shifted_split(runs, tmp_path):
    root, dirs = runs
    run = tmp_path / "02_study" / "multisem" / "correlated" / "mtl" / "seed0"
    shutil.copytree(dirs[0], run)
    tasks = list(final_line(run)["primary"])
    for n, rho in ((200, 0.9), (1000, 0.25)):  # the larger sample wins, whatever the file order
        rows = [{"task": t, "set": s, "rho_spur": rho + i / 100 + (s == "iid"), "flip_rate": rho / 2}
                for i, t in enumerate(tasks) for s in ("shifted", "iid")]  # fmt: skip
        pd.DataFrame(rows).to_csv(run / f"spurious_logit_n{n}_s0.csv", index=False)
    table = R.build(tmp_path).set_index("task")
    assert table.variant.unique().tolist() == ["multisem/correlated"]
    assert table.rho_spur.tolist() == pytest.approx([0.25 + i / 100 for i in range(len(tasks))])
    assert table.flip_rate.tolist() == pytest.approx([0.125] * len(tasks))
    assert R.build(root).rho_spur.isna().all()  # runs that were never analysed


def test_record_gives_the_same_paired_deltas_as_the_run_folders(runs, tmp_path):
    root, dirs = runs
    path = tmp_path / "runs.csv"
    assert R.main(["build", str(root), "--out", str(path)]) == 0
    back = R.column(R.read(path), "06_study")
    expected = paired_summary(per_seed_delta(collect(dirs)))
    got = paired_summary(per_seed_delta(back))
    pd.testing.assert_frame_equal(got, expected, rtol=1e-5)


def test_record_errors_name_the_file_and_the_fix(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="make record"):
        R.read(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CorruptFileError, match="bad.csv: not a run record"):
        R.read(tmp_path / "bad.csv")
    assert R.main(["build", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_verify_retrains_a_recorded_run_to_zero_difference_on_this_machine(tmp_path):
    from mtcrl_lite.experiments.verify import verify

    over = {"train.device": "auto", **SMALL}
    cfg = make_config("debug", "mtcrl", 0, "default", over)
    T.run(cfg, tmp_path / "res" / "06_study" / "mtcrl" / f"seed0-{cfg.digest()}", progress=False)
    record = R.build(tmp_path / "res")
    lines = []
    table = verify(record, [("debug", "mtcrl", 0), ("debug", "mtl", 0)], tmp_path / "work", SMALL, log=lines.append)
    assert list(table.task) == ["left", "right"] and (table.difference == 0).all()
    assert (table.selected_epoch == table.selected_here).all()
    assert any(line.startswith("skip debug mtl seed 0") for line in lines)


def test_config_json_records_the_processor():
    info = T.processor("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n")
    assert info["model"] == "Some CPU" and info["isa"] == ["sse4_2", "avx", "avx2", "fma", "avx512f"]
    arm = T.processor("processor\t: 0\nFeatures\t: fp asimd sve\nCPU part\t: 0xd0c\n")
    assert arm["model"] == "0xd0c" and arm["isa"] == ["asimd", "sve"]
    assert T.provenance()["processor"]["machine"]
