"""The equal-budget search (search.py), tuned defaults (config.make_config), and the two controls (frozen A, random
environments), on the download-free debug dataset."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mtcrl_lite.baselines.methods import ERM, METHODS, MethodSpec
from mtcrl_lite.data.batching import training_environments
from mtcrl_lite.grid import search as S
from mtcrl_lite.run import config as C
from mtcrl_lite.run import train as T
from mtcrl_lite.run.config import make_config

TINY = {"train.batch_size": 32, "train.epochs": 1, "model.channels": (4,), "model.width": 8}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_draws_are_inside_their_ranges_typed_and_deterministic(method):
    space = {r.key: r for r in S.search_space("debug", method)}
    assert {"train.lr", "train.weight_decay", "model.width", "model.module_norm"} <= set(space)
    assert ("model.n_modules" in space) == method.startswith("mtcrl")
    assert "hp.girm" not in space and "hp.girm_grad" not in space and "hp.graph_trainable" not in space
    if method == "mtcrl-nogirm":
        assert "hp.lambda_girm" not in space and "hp.anneal_steps" not in space
    default = make_config("debug", method, tuned=False)
    for d in range(1, 9):
        values = S.draw_overrides("debug", method, d)
        assert values == S.draw_overrides("debug", method, d)  # deterministic
        assert set(values) == set(space)
        for k, v in values.items():
            assert space[k].contains(v), (k, v, space[k])
            assert type(v) is type(C.get_value(default, k)), (k, v)
    draws = [S.draw_overrides("debug", method, d) for d in range(1, 9)]
    assert len({json.dumps(v, sort_keys=True) for v in draws}) == 8  # not all the same


def test_draw_zero_is_the_registry_defaults():
    for method in ("mtl", "mtcrl", "irm"):
        values = S.draw_overrides("debug", method, 0)
        cfg = make_config("debug", method, tuned=False)
        assert values == {k: C.get_value(cfg, k) for k in values}
        assert make_config("debug", method, overrides=values, tuned=False).digest() == cfg.digest()
    assert S.draw_overrides("movielens", "mtcrl", 0)["hp.anneal_steps"] == 80  # the dataset's default preset


def test_adding_a_method_or_a_field_changes_no_other_draw(monkeypatch):
    before = {m: [S.draw_overrides("debug", m, d) for d in range(1, 5)] for m in ("mtl", "irm", "mtcrl")}
    monkeypatch.setitem(METHODS, "another", MethodSpec("another", ERM, {}, "a method registered later"))
    assert {m: [S.draw_overrides("debug", m, d) for d in range(1, 5)] for m in before} == before
    space = S.search_space
    monkeypatch.setattr(S, "search_space", lambda *a, **k: [r for r in space(*a, **k) if r.key != "train.lr"])
    later = S.draw_overrides("debug", "irm", 3)
    assert later == {k: v for k, v in before["irm"][2].items() if k != "train.lr"}


def test_pinned_fields_are_not_searched_and_infeasible_modules_are_redrawn():
    values = [S.draw_overrides("debug", "mtcrl", d, base_overrides={"width": 8}) for d in range(1, 13)]
    assert all("model.width" not in v for v in values)
    assert {v["model.n_modules"] for v in values} <= {4, 8}  # 16 does not divide the width 8
    assert "model.width" not in {r.key for r in S.search_space("multisem", "mtl")}
    ks = {S.draw_overrides("movielens", "mtcrl", d, n_tasks=8)["model.n_modules"] for d in range(1, 13)}
    assert ks <= {8, 16}  # K >= T = 8 genres


def test_tiny_search_table_select_and_tuning_files(tmp_path, monkeypatch):
    out, tuning = tmp_path / "runs", tmp_path / "tuning"
    argv = ["--dataset", "debug", "--methods", "mtl", "mtcrl", "--draws", "2", "--out", str(out), "--quiet"]
    argv += sum((["--set", f"{k}={v}"] for k, v in {**TINY, "model.channels": "4"}.items()), [])
    assert S.main(argv + ["--write-tuning", "--tuning-dir", str(tuning)]) == 0
    table = pd.read_csv(out / "search.csv")
    assert table.groupby("method").size().to_dict() == {"mtl": 2, "mtcrl": 2}  # equal budget
    assert list(table.columns[:11]) == [
        "dataset",
        "method",
        "draw",
        "seed",
        "scale",
        "base_overrides",
        "digest",
        "git_revision",
        "status",
        "selected_epoch",
        "searched",
    ]
    for col in (
        "train.lr",
        "train.weight_decay",
        "model.module_norm",
        "model.n_modules",
        "hp.lambda_girm",
        "hp.girm",
        "val/left/acc",
        "val/right/acc",
        "test/left/acc",
        "test/right/acc",
        "val_score",
        "test_score",
    ):
        assert col in table.columns, col
    assert (table.status == "ok").all() and table.digest.nunique() == 4 and table.git_revision.notna().all()
    assert table.val_score.tolist() == pytest.approx(((table["val/left/acc"] + table["val/right/acc"]) / 2).tolist())
    assert pd.read_csv(tuning / "debug.csv").equals(table)
    tuned = json.loads((tuning / "tuned.json").read_text())["debug"]
    assert set(tuned) == {"mtl", "mtcrl"}
    assert tuned["mtl"]["values"] == S.select(table)["mtl"] and "make tune" in tuned["mtl"]["regenerate"]
    assert S.select(S.tuning_table("debug", tmp_path / "tuning")) == S.select(table)  # read back from the csv
    with pytest.raises(FileNotFoundError, match="make tune"):
        S.tuning_table("movielens", tmp_path / "tuning")
    assert tuned["mtcrl"]["command"].startswith("python -m mtcrl_lite.grid.search --dataset debug")
    # the presets read it: values applied and recorded; a second search run reuses every run
    monkeypatch.setattr(C, "TUNED_PATH", tuning / "tuned.json")
    cfg = make_config("debug", "mtcrl")
    assert cfg.tuned == tuned["mtcrl"]["values"] and cfg.hp.lr_graph == tuned["mtcrl"]["values"]["hp.lr_graph"]
    mtimes = sorted(p.stat().st_mtime for p in out.rglob("results.jsonl"))
    assert S.main(argv) == 0
    assert sorted(p.stat().st_mtime for p in out.rglob("results.jsonl")) == mtimes


def test_select_uses_validation_and_oracle_uses_test():
    rows = [
        {
            "dataset": "debug",
            "method": "mtl",
            "draw": d,
            "status": "ok",
            "searched": "train.lr",
            "train.lr": lr,
            "val_score": v,
            "test_score": t,
        }
        for d, lr, v, t in [(0, 1e-3, 0.5, 0.9), (1, 2e-3, 0.8, 0.1), (2, 3e-3, float("nan"), 0.5)]
    ]
    rows.append({**rows[0], "draw": 3, "train.lr": 4e-3, "status": "diverged", "val_score": 0.99})
    table = pd.DataFrame(rows)
    assert S.select(table) == {"mtl": {"train.lr": 2e-3}}
    assert S.oracle(table) == {"mtl": {"train.lr": 1e-3}}
    summary = S.selection_summary(table).loc["mtl"]
    assert summary.selected_draw == 1 and summary.oracle_draw == 0 and summary.draws == 4


def test_selection_restricted_to_one_architecture():
    rows = [
        {
            "dataset": "debug",
            "method": "mtl",
            "draw": d,
            "status": "ok",
            "searched": "model.module_norm train.lr",
            "model.module_norm": norm,
            "train.lr": lr,
            "val_score": v,
            "test_score": t,
        }
        for d, norm, lr, v, t in [
            (0, "batch", 1e-3, 0.9, 0.9),
            (1, "none", 2e-3, 0.6, 0.3),
            (2, "none", 3e-3, 0.7, 0.2),
            (3, "batch", 4e-3, 0.5, 0.95),
        ]
    ]
    table = pd.DataFrame(rows)
    assert S.select(table)["mtl"]["train.lr"] == 1e-3
    assert S.select(table, {"model.module_norm": "none"}) == {"mtl": {"model.module_norm": "none", "train.lr": 3e-3}}
    assert S.oracle(table, {"model.module_norm": "none"})["mtl"]["train.lr"] == 2e-3
    summary = S.selection_summary(table, {"model.module_norm": "none"}).loc["mtl"]
    assert summary.draws == 2 and summary.selected_draw == 2 and summary.oracle_draw == 1
    with pytest.raises(KeyError, match="model.gate"):
        S.select(table, {"model.gate": "hard"})
    table["train.lr"] = table["train.lr"].astype(object).where(table.draw != 2, "0.003")  # as read from a csv
    assert list(S.restrict(table, {"train.lr": 3e-3}).draw) == [2]  # numbers compare as numbers
    with pytest.raises(ValueError, match="no draw .* has {'model.module_norm': 'group'}"):
        S.select(table, {"model.module_norm": "group"})


def test_diverged_draw_is_recorded_and_skipped(tmp_path):
    base = {**TINY, "hp.lambda_dec": "1e39"}
    dirs = S.run_search("debug", ["mtcrl"], 1, tmp_path, base_overrides=base, progress=False)
    table = S.search_table(dirs)
    assert table.status.tolist() == ["diverged"] and "is inf" in table.error[0]
    assert S.select(table) == {} and not (dirs[0] / "checkpoint.pt").exists()
    assert S.run_search("debug", ["mtcrl"], 1, tmp_path, base_overrides=base, progress=False) == dirs  # reused


def test_tuned_values_apply_to_the_default_scale_and_are_recorded(tmp_path, monkeypatch):
    path = tmp_path / "tuned.json"
    path.write_text(
        json.dumps(
            {
                "movielens": {
                    "mtcrl": {
                        "values": {"train.lr": 0.002, "hp.anneal_steps": 300, "hp.lambda_girm": 5, "model.width": 32}
                    }
                }
            }
        )
    )
    monkeypatch.setattr(C, "TUNED_PATH", path)
    d = make_config("movielens", "mtcrl")
    assert (d.train.lr, d.hp.anneal_steps, d.hp.lambda_girm, d.model.width) == (0.002, 300, 5.0, 32)
    assert isinstance(d.hp.lambda_girm, float) and d.tuned["hp.lambda_girm"] == 5.0
    s = make_config("movielens", "mtcrl", scale="smoke")  # the smoke preset keeps its geometry
    assert (s.train.lr, s.hp.anneal_steps, s.model.width) == (0.002, 4, 16)
    assert s.tuned == {"train.lr": 0.002, "hp.lambda_girm": 5.0}
    o = make_config("movielens", "mtcrl", overrides={"train.lr": "0.01"})  # --set still wins
    assert o.train.lr == 0.01 and "train.lr" not in o.tuned
    u = make_config("movielens", "mtcrl", tuned=False)
    assert u.tuned == {} and u.train.lr == 1e-3 and u.digest() != d.digest()
    assert make_config("movielens", "mtl").tuned == {}  # no entry: nothing changes
    assert make_config("movielens", "mtl").digest() == make_config("movielens", "mtl", tuned=False).digest()
    back = C.config_from_dict(json.loads(json.dumps({**d.to_dict()})))
    assert back.digest() == d.digest() and back.tuned == d.tuned
    monkeypatch.setattr(C, "TUNED_PATH", tmp_path / "absent.json")
    assert make_config("movielens", "mtcrl").tuned == {}


def test_new_fields_at_their_defaults_keep_the_digest():
    cfg = make_config("debug", "mtcrl")
    assert cfg.hp.graph_trainable is True and cfg.train.envs == "dataset"
    d = cfg.to_dict()
    del d["tuned"]
    for key in C.LATER_FIELDS:  # the digest of a config written before these fields existed
        section, name = key.split(".")
        if not hasattr(getattr(cfg, section), name):  # a field of another dataset (data.style: scenes)
            continue
        assert getattr(getattr(cfg, section), name) == C.LATER_FIELDS[key]
        del d[section][name]
    import hashlib

    assert cfg.digest() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]
    assert make_config("debug", "mtcrl", overrides={"hp.graph_trainable": "false"}).digest() != cfg.digest()
    assert make_config("debug", "mtcrl", overrides={"train.envs": "random"}).digest() != cfg.digest()
    assert make_config("debug", "mtcrl", overrides={"model.head_read": "sum"}).digest() != cfg.digest()


def _one_epoch(m, data):
    plan = T.epoch_plan({e: len(s) for e, s in data.train_envs.items()}, 32, 0, 0)
    for step, idx in enumerate(plan):
        logs = m.update({e: T.to_batch(data.train_envs[e], ix, "cpu") for e, ix in idx.items()}, step)
    return logs


@pytest.mark.parametrize("girm_grad", ["exact", "first_order"])
def test_frozen_graph_stays_at_its_initialisation_while_the_rest_trains(girm_grad):
    over = {**TINY, "hp.anneal_steps": 1, "hp.lr_graph": 10.0, "hp.graph_trainable": "false", "hp.girm_grad": girm_grad}
    cfg = make_config("debug", "mtcrl", overrides=over)
    data = T.load_data(cfg)
    m = T.build_method(cfg, data, torch.device("cpu"))
    theta0 = m.model.theta.detach().clone()
    rest0 = {n: p.detach().clone() for n, p in m.model.named_parameters() if n != "theta"}
    logs = _one_epoch(m, data)
    assert logs["girm"] > 0  # G-IRM still penalises dR/dA
    assert torch.equal(m.model.theta, theta0) and torch.allclose(m.model.graph, torch.sigmoid(torch.tensor(1.0)))
    assert all(not torch.equal(p, rest0[n]) for n, p in m.model.named_parameters() if n != "theta")
    trained = T.build_method(
        make_config("debug", "mtcrl", overrides={**over, "hp.graph_trainable": "true"}), data, torch.device("cpu")
    )
    _one_epoch(trained, data)
    assert not torch.equal(trained.model.theta, theta0)


def test_random_environments_keep_sizes_are_seeded_and_differ_from_the_dataset():
    cfg = make_config("debug", "mtl", overrides=TINY)
    data = T.load_data(cfg)
    rand = training_environments(data, "random", seed=0)
    assert list(rand.train_envs) == ["random0", "random1"]
    assert [len(s) for s in rand.train_envs.values()] == [len(s) for s in data.train_envs.values()]
    pool = lambda d: np.sort(np.concatenate([s.x.reshape(len(s), -1) for s in d.train_envs.values()]), axis=0)
    assert np.array_equal(pool(rand), pool(data))  # the same samples, dealt again
    same = training_environments(data, "random", seed=0)
    other = training_environments(data, "random", seed=1)
    for a, b, c, d in zip(
        rand.train_envs.values(), same.train_envs.values(), other.train_envs.values(), data.train_envs.values()
    ):
        assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x) and not np.array_equal(a.x, d.x)
    assert rand.val is data.val and rand.test is data.test
    via_config = T.load_data(make_config("debug", "mtl", 3, overrides={**TINY, "train.envs": "random"}))
    assert np.array_equal(
        via_config.train_envs["random0"].x, training_environments(data, "random", 3).train_envs["random0"].x
    )
    with pytest.raises(ValueError, match="train.envs must be one of"):
        training_environments(data, "shuffled")


def test_methods_all_is_every_registered_method_including_a_new_one(monkeypatch, tmp_path):
    from mtcrl_lite.baselines.methods import ERM, MethodSpec
    from mtcrl_lite.grid import search as S

    spec = MethodSpec("another", ERM, {}, "a method registered later", label="Another")
    monkeypatch.setitem(METHODS, "another", spec)
    seen = {}

    def fake_search(dataset, methods, *args, **kwargs):
        seen["methods"] = methods
        raise ValueError("stop here")

    monkeypatch.setattr(S, "run_search", fake_search)
    assert S.main(["--dataset", "debug", "--methods", "all", "--draws", "1", "--out", str(tmp_path)]) == 2
    assert seen["methods"] == list(METHODS) and "another" in seen["methods"]
    from mtcrl_lite.analysis.tables import label

    assert label("another") == "Another" and label("mtcrl") == "MT-CRL, G-IRM Var"
