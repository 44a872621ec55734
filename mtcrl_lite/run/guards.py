"""Run-time guards of the runner: divergence, penalties that a dataset makes inactive, the output directory and its
one writer.

Divergence (DivergenceMonitor, after every training step): a run stops with TrainingDiverged when

* the step's total loss exceeds DIVERGENCE_FACTOR x max(its running minimum over the run's steps so far,
  DIVERGENCE_FLOOR), i.e. it grew by four orders of magnitude; normal training of the shipped datasets never comes
  close (their losses start at O(1) and a bad step at a too-large but sane lr raises them a few-fold), while
  train.lr = 1e6 on debug/mtl lifts the loss from 4.6 to ~1e30 in one step; or
* a parameter is non-finite after the step (the loss of the next step would be, but the last step has no next).

The loss was finite (non-finite losses stop the run before the step, methods.check_finite), so the error names the
step, the largest loss term and the learning rate.
"""

from __future__ import annotations

import fcntl
import math
import os
import socket
import tempfile
import time
from pathlib import Path

import torch

from mtcrl_lite.baselines.methods import NonFiniteLossError

DIVERGENCE_FACTOR = 1e4  # total loss above this many times its running minimum ...
DIVERGENCE_FLOOR = 1.0  # ... (or times this floor, when the minimum is smaller) is divergence


class TrainingDiverged(NonFiniteLossError):
    pass


class RunDirConflict(RuntimeError):
    """The run directory cannot be trained as asked (another config, another writer, ...); the message says why and
    what to do."""


class DivergenceMonitor:
    """check(logs, step) after each step of `method` (trained at learning rate `lr`); see the module docstring."""

    def __init__(self, method, lr: float, factor: float = DIVERGENCE_FACTOR, floor: float = DIVERGENCE_FLOOR):
        self.params = [(n, p) for n, p in method.named_parameters()]
        self.lr, self.factor, self.floor, self.best = lr, factor, floor, math.inf

    def check(self, logs: dict[str, float], step: int) -> None:
        total = logs["total"]
        if total > self.factor * max(self.best, self.floor):
            term = max((k for k in logs if k != "total"), key=lambda k: logs[k], default="total")
            raise TrainingDiverged(
                f"training diverged at step {step}: the loss is {total:.3g}, over {self.factor:g} x its running "
                f"minimum {self.best:.3g} (largest term {term!r} = {logs[term]:.3g}) at train.lr = {self.lr:g}; "
                f"lower the learning rate (--set train.lr=...) or the weight of that term"
            )
        self.best = min(self.best, total)
        finite = torch.stack([torch.isfinite(p).all() for _, p in self.params])
        if not bool(finite.all()):
            bad = [n for (n, _), ok in zip(self.params, finite.tolist()) if not ok]
            raise TrainingDiverged(
                f"training diverged at step {step}: parameters {bad[:3]}{' ...' if len(bad) > 3 else ''} are "
                f"non-finite after the step (loss {total:.3g}) at train.lr = {self.lr:g}; lower the learning rate "
                f"(--set train.lr=...)"
            )


class InactivePenaltyWarning(UserWarning):
    pass


def inactive_penalties(cfg, train_envs) -> dict[str, str]:
    """{term: why} for the environment penalties of `cfg.method` that `train_envs` make inactive (one environment:
    nothing to be invariant across). run() warns once per run and records them in config.json."""
    if len(train_envs) >= 2:
        return {}
    env, hp, out = list(train_envs)[0] if train_envs else None, cfg.hp, {}
    fix = (
        "add training environments to the data config (data.train_corrs, data.train_mc, data.env_strengths, "
        "data.env_edges or data.n_envs)"
    )
    if getattr(hp, "girm", "none") == "var" and hp.lambda_girm > 0:
        out["girm"] = (
            f"G-IRM is inactive: {cfg.dataset} has one training environment ({env!r}), and the variance "
            f"of dR/dA over one environment is identically 0; {fix}, or run mtcrl-nogirm to say so"
        )
    elif getattr(hp, "girm", "none") == "norm" and hp.lambda_girm > 0:
        out["girm"] = (
            f"G-IRM Norm enforces no invariance: {cfg.dataset} has one training environment ({env!r}), "
            f"so its penalty only shrinks that environment's dR/dA; {fix}"
        )
    if getattr(hp, "lambda_irm", 0) > 0:
        out["irm"] = (
            f"IRM's penalty enforces no invariance: {cfg.dataset} has one training environment ({env!r}), "
            f"so it only calibrates that environment's output scale; {fix}"
        )
    if getattr(hp, "lambda_vrex", 0) > 0:
        out["vrex"] = (
            f"V-REx is inactive: {cfg.dataset} has one training environment ({env!r}), and the variance "
            f"of a risk over one environment is identically 0; {fix}"
        )
    if getattr(hp, "lambda_dann", 0) > 0:
        out["dann"] = (
            f"DANN's adversary is inactive: {cfg.dataset} has one training environment ({env!r}), "
            f"which the discriminator always predicts (its loss is 0); {fix}"
        )
    return out


def prepare_out_dir(out: Path) -> None:
    """Create the run directory and prove that files can be written in it, before any training."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file, not a directory; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(
            f"--out {out} cannot be written ({e.strerror or e}); choose a writable directory with "
            f"--out, or fix its permissions"
        ) from None


LOCK = ".lock"  # in the run directory; kept after the run (removing it would let two writers lock two files)


class RunDirLock:
    """One writer per run directory: acquire(out) takes an exclusive flock on out/.lock, or raises RunDirConflict
    naming the process that holds it. The lock belongs to the open file, so it is released by release(), by the end
    of the `with` block, or by the operating system when the process dies, kill -9 included: it never goes stale.
    Under torchrun rank 0 alone takes it (it alone writes the run directory); a torchrun agent killed with -9 leaves
    its workers running, and their rank 0 keeps the lock until they end."""

    def __init__(self):
        self.fd = None

    def acquire(self, out: Path) -> None:
        fd = os.open(Path(out) / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirConflict(
                f"{out} is being written by {holder}; two writers would mix their files. Wait for that run to "
                f"end, or stop it if it should not run (a killed writer releases the directory at once)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
