import json

import pytest

from mtcrl_lite import ablations as AB
from mtcrl_lite import report
from mtcrl_lite.config import make_config


def test_exclusive_share_counts_modules_one_task_keeps_and_another_drops():
    a = [[0.95, 0.05, 0.5, 0.99],
         [0.02, 0.97, 0.5, 0.98]]
    assert AB.exclusive_share(a) == 0.5            # modules 0 and 1; 2 is undecided, 3 is shared
    assert AB.exclusive_share([[1.0, 1.0], [1.0, 1.0]]) == 0.0
    with pytest.raises(ValueError, match="T >= 2"):
        AB.exclusive_share([[0.9, 0.1]])


def test_slugs_are_directory_names_and_distinct_for_the_design_space():
    assert AB.slug("λ_dec 0") == "lambda_dec_0" and AB.slug("MTL (plain)") == "MTL_plain"
    assert AB.slug("K = 2") == "K_2"
    labels = {**AB.BASELINES, **AB.DESIGN}
    assert len({AB.slug(k) for k in labels}) == len(labels)
    with pytest.raises(ValueError, match="no characters"):
        AB.slug("()")


def test_every_condition_is_a_valid_config_that_differs_from_the_default():
    base = make_config("multimnist", "mtcrl").digest()
    for label, (method, over) in {**AB.BASELINES, **AB.DESIGN}.items():
        cfg = make_config("multimnist", method, 0, "default", over)
        assert (cfg.digest() == base) == (label == "MT-CRL"), label


def _write_run(d, method, seed, val_curve, selected):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"method": method, "seed": seed, "dataset": "debug", "digest": "x"}))
    rows = [{"kind": "epoch", "epoch": i, "metrics": {"val": {"left": {"acc": v}, "right": {"acc": v}}}}
            for i, v in enumerate(val_curve)]
    rows.append({"kind": "final", "selected_epoch": selected, "primary": {"left": "acc", "right": "acc"}})
    (d / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return d


def test_convergence_reports_the_selected_share_and_the_tail_gain(tmp_path):
    plateau = _write_run(tmp_path / "a", "mtl", 0, [0.5, 0.8, 0.9, 0.91, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], 3)
    rising = _write_run(tmp_path / "b", "mtl", 1, [0.1 * i for i in range(10)], 9)
    c = AB.convergence([plateau, rising]).set_index("seed")
    assert c.loc[0, "selected_share"] == 0.4 and c.loc[0, "tail_gain"] == 0.0
    assert c.loc[1, "selected_share"] == 1.0 and c.loc[1, "tail_gain"] == pytest.approx(0.2)   # 0.9 vs 0.7


def test_conditions_pair_by_seed_like_methods(tmp_path):
    conditions = {"MTL (matched)": ("mtl", {}), "frozen A": ("mtcrl", {"hp.graph_trainable": False})}
    over = {"train.epochs": 1, "model.channels": (4,), "model.width": 8, "train.batch_size": 32}
    dirs = AB.run_conditions("debug", conditions, [0, 1], tmp_path, "smoke", over, progress=False)
    assert [len(v) for v in dirs.values()] == [2, 2]
    assert all(p.parent.parent.name == AB.slug(k) for k, v in dirs.items() for p in v)
    df = AB.labelled(dirs)
    assert set(df.method) == set(conditions) and set(df.registry_method) == {"mtl", "mtcrl"}
    deltas = report.per_seed_delta(df, baseline="MTL (matched)")
    assert list(deltas.method) == ["frozen A", "frozen A"] and sorted(deltas.seed) == [0, 1]
    graph = [r for r in (dirs["frozen A"][0] / "results.jsonl").read_text().splitlines()][-1]
    assert len(set(v for row in json.loads(graph)["A"] for v in row)) == 1     # A never moved
    mech = AB.mechanism(dirs, n_max=32)
    assert list(mech.index) == list(conditions)
    assert mech.loc["frozen A", "exclusive"] == 0.0 and mech["exclusive"].isna().tolist() == [True, False]
    assert ((mech.flip_rate >= 0) & (mech.flip_rate <= 1)).all() and (mech.rho_spur >= 0).all()
