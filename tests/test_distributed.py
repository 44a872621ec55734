"""torchrun: a run over 2 gloo processes equals the one-process run on the same global batch (distributed.py), for
every method of the registry, with batch normalisation in the encoder and with a feature-map encoder.

Two checks per method: the gradient of the first step (what the optimizer receives, after PCGrad or an aggregator has
combined the per-task gradients) equals the one-process gradient to 1e-5 (relative norm of the whole vector), and
after STEPS steps the losses and the parameters equal it to 1e-5. The steps use SGD at the run's learning rate: Adam
divides by sqrt(v) + eps, which turns the round-off of a gradient whose exact value is 0 (a bias before batch
normalisation) into a step of size ~lr, so two exact computations that differ only in summation order drift apart at
the lr scale (measured, mtl with batch norm: step-0 gradients equal to 4e-6 relative, encoder.proj.bias 5e-3 apart
after 3 Adam steps). A gradient off by any factor moves the parameters by ~lr |g| > 1e-5 and fails both checks."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from helpers import interrupted_at

from mtcrl_lite.baselines.methods import METHODS
from mtcrl_lite.data.batching import train_steps
from mtcrl_lite.models import distributed as D
from mtcrl_lite.run import train as T
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.rundir import read_jsonl
from mtcrl_lite.run.train import build_method, load_data

STEPS = 3
# (method, extra overrides): every method with its penalties active from step 0 and a batch-normalised encoder;
# MT-CRL also with channel-group modules of a feature map (conv encoder, BatchNorm2d)
CASES = [(m, {}) for m in METHODS] + [
    ("mtcrl", {"model.module_form": "channels"}),
    ("mtcrl", {"hp.girm_grad": "exact"}),
]


def _config(method: str, extra: dict):
    hp_fields = {f.name for f in dataclasses.fields(METHODS[method].cls.hparams_cls)}
    sets = {"model.module_norm": "batch", **({"hp.anneal_steps": 0} if "anneal_steps" in hp_fields else {}), **extra}
    return make_config("debug", method, 0, "smoke", sets, tuned=False)


def _train(method: str, extra: dict) -> dict:
    """STEPS steps of one method; every step's logged losses and the final parameters and buffers."""
    torch.manual_seed(0)
    cfg = _config(method, extra)
    data = load_data(cfg)
    m = build_method(cfg, data, torch.device("cpu"))  # shards the model under torchrun (D.shard)
    m.optimizer = torch.optim.SGD([{"params": g["params"], "lr": g["lr"]} for g in m.optimizer.param_groups])
    logs, grads, epoch = [], None, 0
    while len(logs) < STEPS:
        for batch in train_steps(data.train_envs, cfg.train.batch_size, cfg.seed, epoch):
            logs.append(m.update(batch, len(logs)))
            grads = grads or {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
        epoch += 1
    return {"logs": logs, "grads": grads, "state": {k: v.detach().clone() for k, v in m.state_dict().items()}}


RESUME = {"train.epochs": 3}  # 3 epochs of 1 step on the debug data


def _killed_at_step(cfg, out, kill_step: int) -> None:
    """Run cfg in out, interrupted at global step kill_step on every rank, as a killed job would be."""
    with interrupted_at(kill_step):
        try:
            T.run(cfg, out, progress=False)
        except KeyboardInterrupt:
            pass


def _fails_on_rank0() -> None:
    raise T.RunDirConflict(f"raised on rank {D.world()[0]}")


def _gloo_threads() -> list[str]:
    """The names of this process's gloo threads (Linux: /proc/self/task/*/comm)."""
    tasks = Path("/proc/self/task")
    return sorted(n for n in ((d / "comm").read_text().strip() for d in tasks.iterdir()) if "gloo" in n)


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    tmp = Path(tmp)
    D.init_group("gloo", init_method=f"file://{tmp / 'init'}", rank=rank, world_size=world)
    try:
        try:
            D.on_rank0(_fails_on_rank0)
        except T.RunDirConflict as e:  # every rank gets rank 0's error instead of waiting for it
            (tmp / f"error_seen_by_{rank}").write_text(str(e))
        # a worker thread names itself when it starts, so after a collective at least one carries its name
        (tmp / f"threads_in_use_{rank}").write_text(json.dumps(_gloo_threads()))
        results = [_train(m, extra) for m, extra in CASES]
        cfg = _config("mtcrl", RESUME)
        T.run(cfg, tmp / "full", progress=False)
        _killed_at_step(cfg, tmp / "killed", 2)
        _killed_at_step(cfg, tmp / "left", 2)
        logs = []
        T.run(cfg, tmp / "killed", progress=False, log=logs.append)
        if rank == 0:
            torch.save({"cases": results, "resume_log": logs}, tmp / "out.pt")
    finally:
        D.close()
    (tmp / f"threads_after_close_{rank}").write_text(json.dumps(_gloo_threads()))


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(tmp)), nprocs=2, join=True)
    return {"tmp": tmp, **torch.load(tmp / "out.pt", weights_only=False)}


@pytest.mark.parametrize(
    "case", range(len(CASES)), ids=[f"{m}-{'-'.join(e.values()) or 'dense'}" if e else m for m, e in CASES]
)
def test_two_processes_equal_one(case, two_process_results, one_thread):
    method, extra = CASES[case]
    one, two = _train(method, extra), two_process_results["cases"][case]
    assert D.world() == (0, 1)
    for step, (a, b) in enumerate(zip(one["logs"], two["logs"])):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), f"step {step} loss {k}"
    assert one["grads"].keys() == two["grads"].keys()
    flat = [torch.cat([r["grads"][k].reshape(-1) for k in one["grads"]]) for r in (one, two)]
    gap = float((flat[1] - flat[0]).norm() / flat[0].norm())
    assert gap <= 1e-5, f"{method}: step-0 gradients {gap:.1e} apart (relative)"
    assert one["state"].keys() == two["state"].keys()  # GlobalBatchNorm keeps BatchNorm's state keys
    for k, v in one["state"].items():
        torch.testing.assert_close(two["state"][k], v, rtol=1e-5, atol=1e-5, msg=f"{method}: {k}")
    moved = _config(method, extra)  # the steps changed the parameters: the comparison is not vacuous
    assert any(
        not torch.equal(v, build_method(moved, load_data(moved), "cpu").state_dict()[k])
        for k, v in one["state"].items()
        if v.is_floating_point()
    )


def test_killed_two_process_run_resumes_identically(two_process_results):
    tmp = two_process_results["tmp"]
    assert two_process_results["resume_log"] == [f"resuming {tmp / 'killed'} at epoch 2"]
    rows = [
        [{k: v for k, v in r.items() if k != "time_s"} for r in read_jsonl(tmp / d / "results.jsonl")]
        for d in ("full", "killed")
    ]
    assert len(rows[0]) == 4 and rows[0] == rows[1]  # 3 epochs + the final row, bit-identical
    assert json.loads((tmp / "full" / "config.json").read_text())["world_size"] == 2
    with pytest.raises(T.RunDirConflict, match="started on 2 process.*--nproc_per_node=2"):
        T.run(_config("mtcrl", RESUME), tmp / "left", progress=False)  # one process would not be bit-identical


def test_an_error_on_rank0_reaches_every_rank(two_process_results):
    tmp = two_process_results["tmp"]
    assert [(tmp / f"error_seen_by_{r}").read_text() for r in (0, 1)] == ["raised on rank 0"] * 2


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from Linux's /proc")
def test_close_ends_the_backend_threads(two_process_results):
    """After close() no gloo thread is left to release a collective while the interpreter shuts down (the SIGABRT of
    D.init_group's docstring): the runs in between set deterministic mode, whose late import used to pin the group."""
    tmp = two_process_results["tmp"]
    for r in (0, 1):
        assert "pt_gloo_runloop" in json.loads((tmp / f"threads_in_use_{r}").read_text())
        assert json.loads((tmp / f"threads_after_close_{r}").read_text()) == []


def test_uneven_step_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(D, "world", lambda: (0, 2))
    with pytest.raises(ValueError, match="do not split over 2 processes.*train.batch_size=6"):
        D.check_step_size(7)
    D.check_step_size(8)


def test_gather_steps_restores_the_order():
    x = torch.arange(12.0).view(6, 2)
    parts = [x[r::3] for r in range(3)]  # what ranks 0, 1, 2 hold
    torch.testing.assert_close(D.gather_steps(parts), x, rtol=0, atol=0)


def test_one_process_is_untouched():
    cfg = _config("mtcrl", {})
    m = build_method(cfg, load_data(cfg), torch.device("cpu"))
    assert D.shard(m.model) is m.model and not m.model.encoder._forward_pre_hooks
    assert isinstance(m.model.encoder.norm, torch.nn.BatchNorm1d)
    assert D.on_rank0(lambda: 7) == 7 and D.init_from_env() == (0, 1)


def test_shard_hooks_outermost_encoders_once_and_keeps_parameters(monkeypatch):
    monkeypatch.setattr(D, "world", lambda: (0, 2))
    inner = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, affine=True))
    model = torch.nn.Module()
    model.encoder = torch.nn.Module()
    model.encoder.encoder, model.encoder.net = torch.nn.Linear(3, 3), inner  # a nested `encoder` is not split again
    model.stl = torch.nn.ModuleDict({"a": torch.nn.Module()})
    model.stl.a.encoder = torch.nn.Linear(3, 3)  # STL: one encoder per task
    weight, state = inner[1].weight, {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        D.shard(model)
    assert len(model.encoder._forward_pre_hooks) == len(model.stl.a.encoder._forward_pre_hooks) == 1
    assert not model.encoder.encoder._forward_pre_hooks
    assert isinstance(inner[1], D.GlobalBatchNorm) and inner[1].weight is weight  # the optimizer's Parameter
    assert any(p is weight for g in opt.param_groups for p in g["params"])
    assert model.state_dict().keys() == state.keys()
    with pytest.raises(ValueError, match="no submodule named 'encoder'"):
        D.shard(torch.nn.Linear(2, 2))


def test_torchrun_cli(tmp_path):
    """The command of the issue, on the CPU: rank 0 writes the run, recording its world size."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    p = subprocess.run(
        torchrun
        + [
            "-m",
            "mtcrl_lite.run.train",
            "--dataset",
            "debug",
            "--method",
            "mtcrl",
            "--smoke",
            "--set",
            "model.module_norm=batch",
            "--quiet",
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1])["run"] == str(run)
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert (run / "results.jsonl").exists() and not (run / "checkpoint.pt").exists()
