"""mtcrl_lite.experiments.dense: the logic of notebooks 03 (Taskonomy), 04 (CityScapes) and 05 (NYUv2), on tiny data."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from mtcrl_lite.analysis import tables as report
from mtcrl_lite.baselines.methods import METHODS
from mtcrl_lite.data import cityscapes, nyuv2
from mtcrl_lite.experiments import dense as DB
from mtcrl_lite.models.networks import n_modules
from mtcrl_lite.run.config import make_config

ALL = list(METHODS)


def params(tmp_path, **kw):
    base = dict(
        SMOKE=True,
        SCALE="default",
        SEEDS=[0, 1, 2],
        EPOCHS=None,
        DEVICE="cpu",
        DATA_ROOT=str(tmp_path / "none"),
        RESULTS_DIR=str(tmp_path / "results"),
        METHODS=["mtl", "mtcrl"],
        TASKS=None,
        JOBS=1,
        FORCE=False,
    )
    return SimpleNamespace(**{**base, **kw})


def test_benchmarks_match_the_main_table_columns_and_their_notebooks():
    for bench in DB.BENCHMARKS.values():
        assert bench.column in report.DATASETS
        assert report.SOURCES[bench.column] == bench.folder
        assert {bench.seg, bench.depth} <= set(bench.tasks)
    with pytest.raises(KeyError, match="unknown dense benchmark 'kitti'"):
        DB.get_benchmark("kitti")


@pytest.mark.parametrize("name, style", [("taskonomy", None), ("cityscapes", "cityscapes"), ("nyuv2", "nyuv2")])
def test_without_real_data_the_stand_in_is_chosen_and_said_first(tmp_path, name, style):
    dataset, over, line = DB.choose_data(DB.BENCHMARKS[name], str(tmp_path))
    assert dataset == "scenes"
    assert line.startswith("data: SYNTHETIC STAND-IN (scenes) † — no ") and str(tmp_path) in line
    assert over.get("data.style") == style  # Taskonomy's style is the scenes default: never named


def test_real_data_is_chosen_when_available(tmp_path):
    root = nyuv2.write_fixture(tmp_path / "nyu")
    dataset, over, line = DB.choose_data(DB.BENCHMARKS["nyuv2"], str(root))
    assert (dataset, over, line) == ("nyuv2", {"data.root": str(root)}, f"data: NYUv2 at {root}")
    city = cityscapes.write_fixture(tmp_path / "city", layout="official")
    dataset, over, line = DB.choose_data(DB.BENCHMARKS["cityscapes"], str(city))
    assert dataset == "cityscapes" and over == {"data.root": str(city), "data.layout": "official"}
    assert "†" not in line


def test_notebook_03_configs_are_unchanged(tmp_path):
    """The digests of the published results/03_taskonomy runs (default scale) and of its smoke runs."""
    for smoke, expected in (
        (False, {"mtcrl": "2838236867", "mtl": "da747069bf", "plain": "ec3e30a2c6"}),
        (True, {"mtcrl": "6b74c6aa1e", "mtl": "b5ff626bf3", "plain": "b4fdb3f2c6"}),
    ):
        run = DB.setup("taskonomy", params(tmp_path, SMOKE=smoke, DEVICE="auto"), log=lambda *_: None)
        assert run.overrides == {"train.device": "auto"}
        got = {m: run.config(m, 0).digest() for m in ("mtcrl", "mtl")}
        got["plain"] = make_config(
            run.dataset, "mtl", 0, run.scale, {**run.overrides, "model.module_norm": "none"}
        ).digest()
        assert got == expected


@pytest.mark.parametrize("name", ["cityscapes", "nyuv2"])
@pytest.mark.parametrize("smoke, scale", [(True, "default"), (False, "default"), (False, "full")])
def test_stand_in_configs_are_valid_for_every_method_and_scale(tmp_path, name, smoke, scale):
    run = DB.setup(name, params(tmp_path, SMOKE=smoke, SCALE=scale), log=lambda *_: None)
    for method in ALL:
        cfg = run.config(method, 0)
        assert cfg.model.width % n_modules(cfg.model, len(run.bench.tasks)) == 0  # else the model cannot be built
        assert cfg.data.style == name
        assert cfg.train.threads == (1 if run.scale == "default" else 2)


def test_setup_prints_the_data_line_first_and_keeps_one_seed_when_smoke(tmp_path):
    lines = []
    run = DB.setup("cityscapes", params(tmp_path, JOBS=2), log=lines.append)
    assert lines[0].startswith("data: SYNTHETIC STAND-IN (scenes) †") and lines[0].endswith("style cityscapes")
    assert "jobs=1" in lines[1] and str(tmp_path / "results") in lines[1]  # smoke: runs in the kernel, one at a time
    assert (run.scale, run.seeds, run.jobs, run.mark) == ("smoke", [0], 1, " †")
    assert (tmp_path / "results" / "figures").is_dir()
    assert DB.setup("cityscapes", params(tmp_path, JOBS=2, SMOKE=False), log=lambda *_: None).jobs == 2


def test_paired_vs_puts_the_papers_column_first():
    rows = (
        [("mtl", s, t, v) for s in (0, 1) for t, v in (("a", 0.5), ("b", 0.4))]
        + [("mtcrl", s, t, v) for s in (0, 1) for t, v in (("a", 0.55), ("b", 0.44))]
        + [("mtl-plain", s, t, v) for s in (0, 1) for t, v in (("a", 0.45), ("b", 0.36))]
    )
    df = pd.DataFrame(
        [
            {
                "dataset": "scenes",
                "method": m,
                "seed": s,
                "selection": "best_val",
                "split": "test",
                "task": t,
                "metric": "miou",
                "value": v,
                "primary": True,
            }
            for m, s, t, v in rows
        ]
    )
    s = DB.paired_vs(df, "mtl", "NYUv2")
    assert list(s.columns[:2]) == ["paper (NYUv2)", "mean"]
    assert s.loc["mtcrl", "paper (NYUv2)"] == report.PAPER["mtcrl"][4] and s.loc["mtcrl", "mean"] == pytest.approx(10)
    assert math.isnan(s.loc["mtl-plain", "paper (NYUv2)"]) and s.loc["mtl-plain", "mean"] == pytest.approx(-10)
    assert DB.paired_vs(df, DB.PLAIN, "NYUv2").loc["mtl", "mean"] == pytest.approx(100 / 9)


def test_run_label_reads_method_seed_and_the_plain_folder(tmp_path):
    assert DB.run_label(tmp_path / "mtcrl-norm" / "seed12-abc") == ("mtcrl-norm", 12)
    assert DB.run_label(tmp_path / "plain" / "mtl" / "seed0-abc") == (DB.PLAIN, 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dense")
    run = DB.setup("cityscapes", params(tmp, EPOCHS=1, RESULTS_DIR=str(tmp / "04_cityscapes")), log=lambda *_: None)
    data = run.load_data()
    return run, data, *run.train(["mtl", "mtcrl"], progress=False)


def test_train_writes_the_column_and_the_plain_mtl_apart(trained):
    run, data, dirs, plain_dirs, both = trained
    assert [DB.run_label(d) for d in dirs] == [("mtl", 0), ("mtcrl", 0)]
    assert [DB.run_label(d) for d in plain_dirs] == [(DB.PLAIN, 0)]
    assert set(both.method) == {"mtl", "mtcrl", DB.PLAIN}
    tidy, stand_in = report.load_column("CityScape", run.out.parent)  # what notebook 09 reads: marked †
    assert stand_in
    assert set(tidy.method) == {"mtl", "mtcrl"} and set(tidy.dataset) == {"scenes"}
    assert set(pd.read_csv(run.out / "tidy_results_plain_mtl.csv").method) == {DB.PLAIN}
    assert set(tidy.task) == {"segmentation", "depth"}


def test_tables_of_a_trained_grid(trained):
    run, data, dirs, plain_dirs, both = trained
    table = DB.data_table(data)
    assert list(table.index) == ["env0", "env1", "val", "test"]
    assert table.loc["env0", "strength"] == 0.9 and table.loc["test", "strength"] == 0.0
    primary = run.primary_table(both)
    assert list(primary.index) == ["mtl", "mtcrl", DB.PLAIN] and ("test", "depth (abs_err)") in primary.columns
    paired = run.paired(both)
    assert set(paired) == {"mtl", DB.PLAIN}
    assert paired["mtl"].loc["mtcrl", "paper (CityScape)"] == report.PAPER["mtcrl"][3]
    assert (run.out / "paired_vs_mtl-plain.csv").exists() and (run.out / "primary_best_val.csv").exists()


def test_shortcut_gap_and_prediction_inputs(trained):
    run, data, dirs, plain_dirs, both = trained
    gap = run.shortcut_gap(data, dirs, plain_dirs)
    assert list(gap.index) == ["mtl", "mtcrl", DB.PLAIN]
    assert list(gap.columns.get_level_values(0).unique()) == ["acc_agree", "acc_disagree", "gap"]
    row = gap.loc["mtcrl"]
    assert row[("gap", "mean")] == pytest.approx(row[("acc_agree", "mean")] - row[("acc_disagree", "mean")])
    assert (run.out / "shortcut_gap.csv").exists()
    x, y, preds = DB.prediction_inputs(data, dirs, 0, n=2)
    assert x.shape[0] == 2 and set(preds) == {"mtl", "mtcrl"}
    assert preds["mtcrl"]["segmentation"].shape[:2] == (2, len(cityscapes.CLASS_NAMES))
    assert DB.prediction_inputs(data, dirs, seed=7)[2] == {}  # no run of that seed: nothing to show


def test_real_data_has_no_shortcut_measure(tmp_path):
    root = nyuv2.write_fixture(tmp_path / "nyu", hw=(8, 12))
    run = DB.setup("nyuv2", params(tmp_path, DATA_ROOT=str(root), EPOCHS=1), log=lambda *_: None)
    assert (run.dataset, run.mark) == ("nyuv2", "")
    data = run.load_data()
    dirs, plain_dirs, both = run.train(["mtl"], progress=False)
    assert run.shortcut_gap(data, dirs, plain_dirs) is None
    assert set(both.dataset) == {"nyuv2"}
