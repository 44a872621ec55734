"""mtcrl_lite.experiments.extended: notebook 10's columns reuse the runs of the notebooks that own the datasets."""

from types import SimpleNamespace

import pytest
from helpers import fake_record

from mtcrl_lite.data import cityscapes, nyuv2
from mtcrl_lite.experiments import dense as DB
from mtcrl_lite.experiments import extended as beyond
from mtcrl_lite.paths import results_root
from mtcrl_lite.run.config import make_config


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real dense data and no results folder of this machine can change a plan (or be written by setup)."""
    monkeypatch.setenv("MTCRL_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("MTCRL_RESULTS", str(tmp_path / "results"))


def params(tmp_path, **kw):
    base = dict(
        SMOKE=False,
        SCALE="default",
        SEEDS=[0, 1, 2, 3, 4],
        DENSE_SEEDS=[0, 1, 2],
        EPOCHS=None,
        DATASETS=list(beyond.NAMES),
        DEVICE="auto",
        DATA_ROOT=str(tmp_path / "cache"),
        RESULTS_DIR=None,
    )
    return SimpleNamespace(**{**base, **kw})


def dense_params(tmp_path, P, **kw):
    """What notebooks 03-05 would be given for the same scale, seeds and data."""
    return SimpleNamespace(
        SMOKE=P.SMOKE,
        SCALE=P.SCALE,
        SEEDS=P.DENSE_SEEDS,
        EPOCHS=P.EPOCHS,
        DEVICE=P.DEVICE,
        RESULTS_DIR=None,
        METHODS=["mtl"],
        TASKS=None,
        JOBS=2,
        FORCE=False,
        **kw,
    )


@pytest.mark.parametrize("smoke, epochs, real", [(False, None, False), (True, None, False), (False, 3, True)])
def test_dense_columns_are_the_dense_notebooks_runs(tmp_path, smoke, epochs, real):
    """Same registry dataset, same config digests for every method, same folder and seeds as notebooks 03-05 given
    the same scale, epochs and data (real: NYUv2 and CityScapes fixtures under DATA_ROOT/<name>)."""
    if real:
        nyuv2.write_fixture(tmp_path / "cache" / "nyuv2")
        cityscapes.write_fixture(tmp_path / "cache" / "cityscapes", layout="official")
    P = params(tmp_path, SMOKE=smoke, EPOCHS=epochs)
    plan = {c.name: c for c in beyond.plan(P)}
    for name in beyond.DENSE:
        col = plan[name]
        run = DB.setup(name, dense_params(tmp_path, P, DATA_ROOT=str(tmp_path / "cache" / name)), log=lambda *_: None)
        assert (col.dataset, col.home, list(col.seeds)) == (run.dataset, run.out, run.seeds)
        for method in ("mtl", "upgrad", "mtcrl"):
            assert (
                make_config(col.dataset, method, 1, run.scale, col.overrides).digest() == run.config(method, 1).digest()
            )
        stand_in = not real or name == "taskonomy"
        assert col.stand_in == stand_in and col.label == DB.BENCHMARKS[name].label + (" †" if stand_in else "")
    assert [len(plan[n].seeds) for n in ("multimnist", "taskonomy")] == ([1, 1] if smoke else [5, 3])


def test_published_digests_are_kept(tmp_path):
    """The digests of the runs published by notebooks 03, 04, 05 (their MTL, seed 0), so notebook 10 reuses them."""
    plan = {c.name: c for c in beyond.plan(params(tmp_path, DATA_ROOT=None))}
    expected = {"taskonomy": "da747069bf", "cityscapes": "aba316fcca", "nyuv2": "3aeb7b5163"}
    for name, digest in expected.items():
        c = plan[name]
        assert make_config(c.dataset, "mtl", 0, "default", c.overrides).digest() == digest
        assert c.home == results_root() / DB.BENCHMARKS[name].folder
    assert plan["movielens"].overrides == {"train.device": "auto", "data.target": "rating"}
    assert plan["multimnist"].home == results_root() / "06_multimnist"
    assert plan["fashionmnist"].home == results_root() / "10_beyond_the_paper" / "fashionmnist"


def test_real_dense_data_under_data_root_replaces_the_stand_in(tmp_path):
    nyuv2.write_fixture(tmp_path / "cache" / "nyuv2")
    c = beyond.plan(params(tmp_path, DATASETS=["nyuv2", "taskonomy"]))
    assert (c[0].dataset, c[0].label, c[0].stand_in) == ("nyuv2", "NYUv2", False)
    assert c[0].overrides["data.root"] == str(tmp_path / "cache" / "nyuv2")
    assert (c[1].dataset, c[1].label) == ("scenes", "Taskonomy †")


def test_order_results_dir_epochs_and_unknown_names(tmp_path):
    P = params(tmp_path, DATASETS=["movielens", "cityscapes"], RESULTS_DIR=str(tmp_path / "r"), EPOCHS=3)
    c = beyond.plan(P)
    assert [x.name for x in c] == ["movielens", "cityscapes"]
    assert [x.home for x in c] == [tmp_path / "r" / "movielens", tmp_path / "r" / "cityscapes"]
    assert all(x.overrides["train.epochs"] == 3 for x in c)
    assert c[0].overrides["data.root"] == str(tmp_path / "cache")  # the small datasets read the cache root
    with pytest.raises(KeyError, match="unknown DATASETS entry 'kitti'"):
        beyond.plan(params(tmp_path, DATASETS=["kitti"]))


def test_jobs_never_oversubscribe_the_cores(tmp_path, monkeypatch):
    """Taskonomy's runs keep notebook 03's 2 threads, so on 2 cores they run one at a time; 1-thread runs two."""
    plan = {c.name: c for c in beyond.plan(params(tmp_path))}
    assert (plan["taskonomy"].threads, plan["cityscapes"].threads, plan["multimnist"].threads) == (2, 1, 1)
    monkeypatch.setattr(beyond.os, "cpu_count", lambda: 2)
    assert [plan[n].jobs(2) for n in ("taskonomy", "cityscapes", "multimnist")] == [1, 2, 2]
    assert plan["multimnist"].jobs(1) == 1
    monkeypatch.setattr(beyond.os, "cpu_count", lambda: 16)
    assert plan["taskonomy"].jobs(4) == 4 and plan["taskonomy"].jobs(12) == 8


def test_from_record_takes_each_columns_runs_and_names_what_the_record_lacks(tmp_path):
    record = fake_record(0.05, 0.002, seeds=range(4))
    record = record[~((record.method == "mtcrl") & (record.seed == 3))]  # MT-CRL lacks seed 3
    col = lambda name, label, folder, seeds: beyond.Column(name, label, name, seeds, folder, {}, 1)  # noqa: E731
    plan = [
        col("multimnist", "Multi-MNIST", results_root() / "06_multimnist", (0, 1, 2)),
        col("multifashion", "Multi-Fashion", results_root() / "10_beyond_the_paper" / "multifashion", (0,)),
        col("movielens", "MovieLens", tmp_path / "07_movielens", (0,)),
    ]
    found, lines = beyond.from_record(plan, ["mtl", "mtcrl", "stl"], record)
    assert list(found) == ["Multi-MNIST"]
    runs = found["Multi-MNIST"]
    assert sorted(runs.seed.unique()) == [0, 1, 2] and set(runs.method) == {"mtl", "mtcrl"}  # the column's seeds
    assert lines[0].endswith("2 methods, seeds [0, 1, 2]")
    assert "not in the record (TRAIN=True trains it)" in lines[1] and "RESULTS_DIR" in lines[2]
    assert list(beyond.from_record(plan[:1], ["stl"], record)[0]) == []  # no MTL to compare with: left out
