import json

import pytest

from mtcrl_lite.analysis import tables as report
from mtcrl_lite.experiments import ablations as AB
from mtcrl_lite.run.config import make_config


def test_exclusive_share_counts_modules_one_task_keeps_and_another_drops():
    a = [[0.95, 0.05, 0.5, 0.99], [0.02, 0.97, 0.5, 0.98]]
    assert AB.exclusive_share(a) == 0.5  # modules 0 and 1; 2 is undecided, 3 is shared
    assert AB.exclusive_share([[1.0, 1.0], [1.0, 1.0]]) == 0.0
    with pytest.raises(ValueError, match="T >= 2"):
        AB.exclusive_share([[0.9, 0.1]])


def test_shift_conditions_keep_the_default_data_at_0_9():
    c = AB.shift_conditions({"MTL": ("mtl", {"model.module_norm": "none"})}, [0.0, 0.9])
    assert c == {
        "MTL @ 0": ("mtl", {"model.module_norm": "none", "data.train_corrs": (0.0, 0.0)}),
        "MTL @ 0.9": ("mtl", {"model.module_norm": "none", "data.train_corrs": (0.9, 0.7)}),
    }
    assert (
        make_config("multimnist", "mtl", overrides={"data.train_corrs": (0.9, 0.7)}).digest()
        == make_config("multimnist", "mtl").digest()
    )
    assert [AB.strength_of(k) for k in c] == [0.0, 0.9]
    assert set(AB.DESIGN_CPU) <= set(AB.DESIGN)


def test_every_condition_is_a_valid_config_that_differs_from_the_default():
    base = make_config("multimnist", "mtcrl", tuned=False).digest()  # notebook 08: the registry defaults
    for label, (method, over) in {**AB.BASELINES, **AB.DESIGN}.items():
        cfg = make_config("multimnist", method, 0, "default", over, tuned=False)
        assert (cfg.digest() == base) == (label == "MT-CRL"), label
    ml = make_config("movielens", "mtcrl").digest()
    for label, (method, over) in AB.MOVIELENS.items():
        assert (make_config("movielens", method, 0, "default", over).digest() == ml) == (label == "MT-CRL"), label


def _write_run(d, method, seed, val_curve, selected):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"method": method, "seed": seed, "dataset": "debug", "digest": "x"}))
    rows = [
        {"kind": "epoch", "epoch": i, "metrics": {"val": {"left": {"acc": v}, "right": {"acc": v}}}}
        for i, v in enumerate(val_curve)
    ]
    final = {"selected_epoch": selected, "metrics": rows[selected]["metrics"], "last10": rows[-1]["metrics"]}
    rows.append({"kind": "final", **final, "primary": {"left": "acc", "right": "acc"}})
    (d / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return d


def test_convergence_reports_the_selected_share_and_the_tail_gain(tmp_path):
    plateau = _write_run(tmp_path / "a", "mtl", 0, [0.5, 0.8, 0.9, 0.91, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], 3)
    rising = _write_run(tmp_path / "b", "mtl", 1, [0.1 * i for i in range(10)], 9)
    c = AB.convergence([plateau, rising]).set_index("seed")
    assert c.loc[0, "selected_share"] == 0.4 and c.loc[0, "tail_gain"] == 0.0
    assert c.loc[1, "selected_share"] == 1.0 and c.loc[1, "tail_gain"] == pytest.approx(0.2)  # 0.9 vs 0.7


def test_conditions_pair_by_seed_like_methods(tmp_path):
    conditions = {"MTL (matched)": ("mtl", {}), "frozen A": ("mtcrl", {"hp.graph_trainable": False})}
    over = {"train.epochs": 1, "model.channels": (4,), "model.width": 8, "train.batch_size": 32}
    dirs = AB.run_conditions("debug", conditions, [0, 1], tmp_path, "smoke", over, progress=False)
    assert [len(v) for v in dirs.values()] == [2, 2]
    assert {p.parent.name for v in dirs.values() for p in v} == {"mtl", "mtcrl"}
    df = AB.labelled(dirs)
    assert set(df.method) == set(conditions) and set(df.registry_method) == {"mtl", "mtcrl"}
    deltas = report.per_seed_delta(df, baseline="MTL (matched)")
    assert list(deltas.method) == ["frozen A", "frozen A"] and sorted(deltas.seed) == [0, 1]
    graph = [r for r in (dirs["frozen A"][0] / "results.jsonl").read_text().splitlines()][-1]
    assert len(set(v for row in json.loads(graph)["A"] for v in row)) == 1  # A never moved
    mech = AB.mechanism(dirs, n_max=32)
    assert list(mech.index) == list(conditions)
    assert mech.loc["frozen A", "exclusive"] == 0.0 and mech["exclusive"].isna().tolist() == [True, False]
    assert ((mech.flip_rate >= 0) & (mech.flip_rate <= 1)).all() and (mech.rho_spur >= 0).all()


def test_mean_score_averages_primary_metrics_per_seed():
    import pandas as pd

    rows = [
        ("m", 0, "left", "acc", 0.8, True),
        ("m", 0, "right", "acc", 0.6, True),
        ("m", 0, "left", "loss", 9, False),
        ("m", 1, "left", "acc", 1.0, True),
        ("m", 1, "right", "acc", 0.5, True),
    ]
    df = pd.DataFrame(rows, columns=["method", "seed", "task", "metric", "value", "primary"]).assign(
        selection="best_val", split="test"
    )
    out = AB.mean_score(df)
    assert out.value.tolist() == pytest.approx([0.7, 0.75]) and out.seed.tolist() == [0, 1]


def test_paired_table_and_its_text_form():
    import pandas as pd

    rows = []
    for seed, (a, b, c) in enumerate([(0.80, 0.88, 0.84), (0.70, 0.77, 0.70)]):
        for method, v in (("A", a), ("B", b), ("C", c)):
            for split in ("val", "test"):
                rows.append(
                    {
                        "method": method,
                        "seed": seed,
                        "task": "t",
                        "metric": "acc",
                        "value": v,
                        "primary": True,
                        "selection": "best_val",
                        "split": split,
                    }
                )
    df = pd.DataFrame(rows)
    p = AB.paired_table(df, ["A"])
    assert p.loc[("A", "test", "B"), "mean"] == pytest.approx(10.0)  # +10 % on both seeds
    assert p.loc[("A", "test", "B"), "std"] == pytest.approx(0.0, abs=1e-9)
    assert p.loc[("A", "test", "C"), "mean"] == pytest.approx(2.5)  # +5 % and 0 %
    text = AB.formatted(p, order=["C", "B"])
    assert list(text.index) == ["C", "B"] and text.loc["B", ("A", "val")] == "+10.00 [+10.00, +10.00]"


def test_conditions_read_tuned_values_unless_told_not_to(tmp_path, monkeypatch):
    from mtcrl_lite.run import config

    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"debug": {"mtl": {"values": {"train.lr": 0.005}}}}))
    monkeypatch.setattr(config, "TUNED_PATH", path)
    over = {"train.epochs": 1, "model.channels": (4,), "model.width": 8, "train.batch_size": 32}
    lrs = {}
    for tuned in (True, False):
        dirs = AB.run_conditions(
            "debug", {"MTL": ("mtl", {})}, [0], tmp_path / str(tuned), "smoke", over, progress=False, tuned=tuned
        )
        lrs[tuned] = json.loads((dirs["MTL"][0] / "config.json").read_text())["train"]["lr"]
    assert lrs == {True: 0.005, False: make_config("debug", "mtl", 0, "smoke", over, tuned=False).train.lr}
