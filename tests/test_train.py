"""The runner and every method, end to end on the download-free debug dataset."""

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from helpers import interrupted_at

from mtcrl_lite.baselines.methods import METHODS, default_hparams
from mtcrl_lite.run import train as T
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.rundir import collect, read_jsonl

SMALL = {"train.batch_size": 32, "train.epochs": 3, "hp.anneal_steps": 1, "model.channels": (4,), "model.width": 8}


def cfg_for(method, seed=0, **extra):
    over = {**SMALL, **extra}
    if not hasattr(default_hparams(method), "anneal_steps"):
        over.pop("hp.anneal_steps")
    return make_config("debug", method, seed, overrides=over)


def train_one_epoch(m, data, batch_size: int = 32) -> dict:
    """Every step of epoch 0 of seed 0; each step's logs must be finite. Returns the last step's logs."""
    plan = T.epoch_plan({e: len(s) for e, s in data.train_envs.items()}, batch_size, 0, 0)
    for step, idx in enumerate(plan):
        logs = m.update({e: T.to_batch(data.train_envs[e], ix, "cpu") for e, ix in idx.items()}, step)
        assert all(math.isfinite(v) for v in logs.values()), (step, logs)
    return logs


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_takes_finite_steps_and_moves_parameters(method):
    cfg = cfg_for(method)
    data = T.load_data(cfg)
    m = T.build_method(cfg, data, torch.device("cpu"))
    before = [p.detach().clone() for p in m.model.parameters()]
    logs = train_one_epoch(m, data)
    if method in ("mtcrl", "mtcrl-norm"):
        assert "girm" in logs and logs["girm"] > 0
    if method == "irm":
        assert logs["irm/left"] > 0 and logs["irm/right"] > 0
    if method == "gradvac":
        assert m.target.abs().sum() > 0  # EMA targets were updated
    moved = [not torch.equal(a, b) for a, b in zip(before, m.model.parameters())]
    assert all(moved)


def test_surgery_step_equals_plain_step_when_tasks_do_not_conflict():
    """With one task's loss, PCGrad must reduce to the ordinary gradient: same parameters after a step."""
    cfg = cfg_for("pcgrad")
    data = T.load_data(cfg)
    idx = T.epoch_plan({e: len(s) for e, s in data.train_envs.items()}, 32, 0, 0)[0]
    batches = {e: T.to_batch(data.train_envs[e], ix, "cpu") for e, ix in idx.items()}
    stepped = []
    for name in ("pcgrad", "mtl"):
        m = T.build_method(cfg_for(name), data, torch.device("cpu"))
        m.tasks = m.tasks[:1]  # a single task: nothing to project
        m.update(batches, 0)
        stepped.append([p.detach() for p in m.model.encoder.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*stepped))


def test_graph_learning_rate_multiplies_only_the_routing_logits():
    """Adam's first step moves every parameter by about its lr: Θ by lr * hp.lr_graph, the rest by lr."""
    data = T.load_data(cfg_for("mtcrl"))
    idx = T.epoch_plan({e: len(s) for e, s in data.train_envs.items()}, 32, 0, 0)[0]
    batches = {e: T.to_batch(data.train_envs[e], ix, "cpu") for e, ix in idx.items()}
    moves = {}
    for mult in (1.0, 10.0):
        cfg = cfg_for("mtcrl", **{"hp.lr_graph": mult, "train.lr": 1e-3})
        m = T.build_method(cfg, data, torch.device("cpu"))
        theta0 = m.model.theta.detach().clone()
        head0 = [p.detach().clone() for n, p in m.model.named_parameters() if n != "theta"]
        m.update(batches, 0)
        moves[mult] = (
            (m.model.theta.detach() - theta0).abs().max().item(),
            max(
                (p.detach() - q).abs().max().item()
                for p, q in zip([p for n, p in m.model.named_parameters() if n != "theta"], head0)
            ),
        )
    assert moves[1.0][0] == pytest.approx(1e-3, rel=0.05)
    assert moves[10.0][0] == pytest.approx(1e-2, rel=0.05)
    assert moves[10.0][1] == pytest.approx(moves[1.0][1], rel=1e-6) and moves[1.0][1] <= 1.05e-3
    with pytest.raises(ValueError, match="lr_graph"):
        T.build_method(cfg_for("mtcrl", **{"hp.lr_graph": 0.0}), data, torch.device("cpu"))


def test_girm_gradients_in_one_call_equal_per_environment_calls():
    cfg = cfg_for("mtcrl")
    data = T.load_data(cfg)
    model = T.build_method(cfg, data, "cpu").model
    envs = list(data.train_envs.values())
    xs = [torch.from_numpy(s.x[:8]).float() / 255 for s in envs]
    ys = [torch.from_numpy(s.y["right"][:8]) for s in envs]
    copies = model.graph.unsqueeze(0).repeat(2, 1, 1)
    env = torch.tensor([0] * 8 + [1] * 8)
    logits = model.routed_logits(model.modules_of(torch.cat(xs)), copies[env])["right"]
    ce = torch.nn.functional.cross_entropy(logits, torch.cat(ys), reduction="none")
    (joint,) = torch.autograd.grad(ce[:8].mean() + ce[8:].mean(), copies)
    for e in range(2):
        a = model.graph
        r = torch.nn.functional.cross_entropy(model.routed_logits(model.modules_of(xs[e]), a)["right"], ys[e])
        (alone,) = torch.autograd.grad(r, model.theta)
        dsig = a * (1 - a)  # dA/dΘ
        assert torch.allclose(joint[e, 1] * dsig[1], alone[1], atol=1e-6)


def test_epoch_plan_is_stratified_and_seeded():
    plan = T.epoch_plan({"a": 10, "b": 25}, 10, seed=1, epoch=2)
    assert len(plan) == 5 and all(len(s["a"]) == len(s["b"]) == 5 for s in plan)
    assert sorted(sum((list(s["b"]) for s in plan), [])) == list(range(25))
    assert all((p["a"] == q["a"]).all() for p, q in zip(plan, T.epoch_plan({"a": 10, "b": 25}, 10, 1, 2)))
    with pytest.raises(ValueError, match="smaller than the number of environments"):
        T.epoch_plan({"a": 3, "b": 3}, 1, 0, 0)


def strip_times(rows):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    a = T.run(cfg_for("mtcrl"), tmp_path / "a", progress=False)
    b = T.run(cfg_for("mtcrl"), tmp_path / "b", progress=False)
    c = T.run(cfg_for("mtcrl", seed=1), tmp_path / "c", progress=False)
    ra, rb, rc = (strip_times(read_jsonl(d / "results.jsonl")) for d in (a, b, c))
    assert ra == rb and ra != rc
    assert [r["kind"] for r in ra] == ["epoch"] * 3 + ["final"]
    assert len(ra[-1]["A"]) == 2 and not (a / "checkpoint.pt").exists()
    cfg = json.loads((a / "config.json").read_text())
    assert cfg["seed"] == 0 and cfg["hp"]["girm"] == "var" and "git_revision" in cfg and cfg["n_params"] > 0


def kill_at_step(kill_step: int, cfg, out):
    """Run cfg in out and interrupt it (KeyboardInterrupt) at global step kill_step, as a killed process would be."""
    with interrupted_at(kill_step), pytest.raises(KeyboardInterrupt):
        T.run(cfg, out, progress=False)


@pytest.mark.parametrize("method", ["mtcrl-norm", "pcgrad", "gradvac", "upgrad"])  # + seeded orders, EMA buffers
def test_killed_run_resumes_to_identical_results(tmp_path, method):
    full = T.run(cfg_for(method), tmp_path / "full", progress=False)
    kill_at_step(9, cfg_for(method), tmp_path / "killed")  # inside epoch 2 of 3 (4 steps each)
    assert (tmp_path / "killed" / "checkpoint.pt").exists()
    assert [r["epoch"] for r in read_jsonl(tmp_path / "killed" / "results.jsonl")] == [0, 1]
    logs = []
    T.run(cfg_for(method), tmp_path / "killed", progress=False, log=logs.append)
    assert logs == [f"resuming {tmp_path / 'killed'} at epoch 2"]
    assert strip_times(read_jsonl(full / "results.jsonl")) == strip_times(
        read_jsonl(tmp_path / "killed" / "results.jsonl")
    )


def test_finished_run_is_reused_and_other_config_is_refused(tmp_path):
    out = T.run(cfg_for("mtl"), tmp_path / "r", progress=False)
    logs = []
    T.run(cfg_for("mtl"), out, progress=False, log=logs.append)
    assert logs == [f"reusing finished run {out}"]
    with pytest.raises(T.RunDirConflict, match="--force"):
        T.run(cfg_for("mtl", **{"train.lr": 0.5}), out, progress=False)
    T.run(cfg_for("mtl", **{"train.lr": 0.5}), out, force=True, progress=False)
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 0.5


def test_collect_gives_a_tidy_table(tmp_path):
    dirs = [T.run(cfg_for(m), tmp_path / m, progress=False) for m in ("stl", "mtl")]
    df = collect(dirs)
    final = df[(df.selection == "best_val") & (df.split == "test") & (df.metric == "acc")]
    assert set(final.method) == {"stl", "mtl"} and set(final.task) == {"left", "right"} and len(final) == 4
    assert set(df.selection) == {"epoch", "best_val", "last10"}
    assert df.value.between(0, 10).all()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mtcrl_lite.run.train", *args], capture_output=True, text=True)


def test_cli_errors_are_clear(tmp_path, capsys):
    """The CLI's error paths, in-process (the subprocess path is covered by the next test)."""

    def cli(*args):
        rc = T.main(list(args))
        return SimpleNamespace(returncode=rc, stderr=capsys.readouterr().err)

    r = cli("--dataset", "debug", "--method", "nope", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "unknown method 'nope'; valid: [" in r.stderr and "'mtcrl-norm'" in r.stderr
    r = cli("--dataset", "debug", "--method", "mtl", "--out", str(tmp_path / "x"), "--set", "train.epoch=2")
    assert r.returncode == 2 and "did you mean ['train.epochs'" in r.stderr
    r = cli("--dataset", "debug", "--method", "mtcrl", "--out", str(tmp_path / "x"), "--set", "model.n_modules=1")
    assert r.returncode == 2 and "smaller than the number of tasks" in r.stderr
    r = cli("--dataset", "debug", "--method", "mtcrl", "--out", str(tmp_path / "y"), "--set", "hp.lambda_dec=1e39")
    assert r.returncode == 1 and "loss term 'dec' is inf at step 0" in r.stderr and "epoch 0" in r.stderr
    r = cli("--dataset", "debug", "--method", "mtl", "--out", str(tmp_path / "z"), "--set", "data.n_test=0")
    assert r.returncode == 2 and "data.n_test = 0 is out of range (must be >= 1)" in r.stderr


def test_cli_trains_and_prints_the_selected_test_accuracy(tmp_path):
    r = cli("--dataset", "debug", "--method", "mtcrl", "--out", str(tmp_path / "ok"), "--quiet", "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout.strip().splitlines()[-1])["test"]) == {"left", "right"}


def test_load_trained_returns_the_validation_selected_weights(tmp_path):
    out = T.run(cfg_for("mtcrl"), tmp_path / "r", progress=False)
    method, cfg, data = T.load_trained(out)
    final = read_jsonl(out / "results.jsonl")[-1]
    assert cfg.digest() == json.loads((out / "config.json").read_text())["digest"]
    assert T.evaluate(method, data, data.test, "cpu") == final["metrics"]["test"]
    assert torch.allclose(method.model.graph, torch.tensor(final["A"]))
    with pytest.raises(FileNotFoundError, match="no finished run"):
        T.load_trained(tmp_path / "nothing")


def test_cosine_schedule_factors_and_optimizer_rates():
    from mtcrl_lite.run.schedule import lr_factor, set_lr

    assert [lr_factor("cosine", s, 4) for s in range(4)] == pytest.approx([1.0, 0.5 + 0.5**1.5, 0.5, 0.5 - 0.5**1.5])
    assert lr_factor("constant", 7, 4) == 1.0
    with pytest.raises(ValueError, match="train.schedule"):
        lr_factor("linear", 0, 4)
    with pytest.raises(ValueError, match="outside"):
        lr_factor("cosine", 4, 4)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [p]}, {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.02}], lr=0.01)
    set_lr(opt, 0.5)
    set_lr(opt, 0.25)  # from the base rates, not compounded
    assert [g["lr"] for g in opt.param_groups] == [0.0025, 0.005]


def test_cosine_run_resumes_identically_and_changes_the_numbers(tmp_path):
    cos = {"train.schedule": "cosine"}
    full = T.run(cfg_for("mtcrl-norm", **cos), tmp_path / "full", progress=False)
    const = T.run(cfg_for("mtcrl-norm"), tmp_path / "const", progress=False)
    assert strip_times(read_jsonl(full / "results.jsonl")) != strip_times(read_jsonl(const / "results.jsonl"))
    kill_at_step(6, cfg_for("mtcrl-norm", **cos), tmp_path / "killed")
    T.run(cfg_for("mtcrl-norm", **cos), tmp_path / "killed", progress=False)
    assert strip_times(read_jsonl(full / "results.jsonl")) == strip_times(
        read_jsonl(tmp_path / "killed" / "results.jsonl")
    )
    with pytest.raises(ValueError, match="train.schedule"):
        cfg_for("mtl", **{"train.schedule": "linear"})


def test_parallel_runs_give_the_same_numbers_as_serial(tmp_path):
    from mtcrl_lite.grid.sweep import run_configs

    cfgs = [cfg_for(m, **{"train.threads": 1}) for m in ("mtl", "mtcrl")]
    serial = run_configs(cfgs, [tmp_path / "s" / c.method for c in cfgs], progress=False)
    parallel = run_configs(cfgs, [tmp_path / "p" / c.method for c in cfgs], progress=False, jobs=2)
    assert [p.name for p in parallel] == ["mtl", "mtcrl"]  # in the order of the configs
    for a, b in zip(serial, parallel):
        assert strip_times(read_jsonl(a / "results.jsonl")) == strip_times(read_jsonl(b / "results.jsonl"))
    with pytest.raises(ValueError, match="jobs"):
        run_configs(cfgs, [tmp_path / "x"] * 2, jobs=0)


def test_finished_runs_are_not_launched_again(tmp_path, monkeypatch):
    from mtcrl_lite.grid import sweep

    cfgs = [cfg_for(m, **{"train.threads": 1, "train.epochs": 1}) for m in ("mtl", "stl")]
    dirs = [tmp_path / c.method for c in cfgs]
    sweep.run_configs(cfgs[:1], dirs[:1], progress=False)  # mtl finished, stl not
    launched = []
    monkeypatch.setattr(sweep, "launch", lambda fn, work, *a, **k: launched.extend(work) or [w[1] for w in work])
    assert sweep.run_configs(cfgs, dirs, progress=False, jobs=2) == dirs
    assert [w[0].method for w in launched] == ["stl"]


@pytest.mark.parametrize(
    "variant",
    [
        {"model.head_read": "sum"},
        {"model.gate": "hard"},
        {"model.module_form": "experts"},
        {"model.module_form": "experts", "model.module_norm": "batch"},
        {"model.module_form": "channels", "model.module_norm": "batch"},
        {"hp.dec_kind": "kernel"},
    ],
)
@pytest.mark.parametrize("method", ["mtcrl", "mtcrl-norm"])
def test_design_variants_train_with_girm_active(tmp_path, method, variant):
    cfg = cfg_for(method, **{"hp.anneal_steps": 0, "train.epochs": 1, **variant})
    out = T.run(cfg, tmp_path / "r", progress=False)
    rows = read_jsonl(out / "results.jsonl")
    assert rows[0]["loss"]["girm"] > 0 and all(math.isfinite(v) for v in rows[0]["loss"].values())
    if variant.get("model.gate") == "hard":
        assert {v for row in rows[-1]["A"] for v in row} <= {0.0, 1.0}


def test_parallel_runs_that_oversubscribe_the_cores_warn(tmp_path, monkeypatch):
    from mtcrl_lite.grid import sweep

    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 2)
    cfgs = [cfg_for("mtl", seed=s, **{"train.threads": 2, "train.epochs": 1}) for s in (0, 1)]
    with pytest.warns(RuntimeWarning, match="oversubscribe"):
        sweep.run_configs(cfgs, [tmp_path / str(s) for s in (0, 1)], progress=False, jobs=2)
