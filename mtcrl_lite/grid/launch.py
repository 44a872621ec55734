"""Where a sweep's runs execute: submitit's local executor (separate processes on this machine, at most `jobs` at a
time; what `make reproduce` and `make tune` use with --jobs 2) or a Slurm cluster (one array job, at most `jobs`
tasks at a time). Each run fixes its own thread count (train.threads), so its numbers do not depend on the launcher
or on how many runs share the machine.

    python -m mtcrl_lite.grid.sweep ... --jobs 2                                    # local, two processes
    python -m mtcrl_lite.grid.sweep ... --launcher slurm --jobs 16 --slurm partition=gpu --slurm gpus_per_node=1 \\
        --slurm time=120 [--dry-run]                                           # prints the sbatch script only

`--slurm KEY=VALUE` takes submitit's SlurmExecutor parameters (partition, time in minutes, gpus_per_node,
cpus_per_task, mem (e.g. 32GB), account, qos, constraint, setup, ...); cpus_per_task defaults to the runs'
train.threads.
submitit writes its logs and pickles to FOLDER (the sweep's `_submitit/` next to its run folders).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import submitit
from submitit.slurm.slurm import _make_sbatch_string
from tqdm.auto import tqdm

LAUNCHERS = ("local", "slurm")
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default is 2 minutes; a run is stopped by nothing here


def slurm_parameters(sets: Sequence[str]) -> dict:
    """--slurm KEY=VALUE pairs as submitit parameters (integers where they parse)."""
    params: dict = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm expects KEY=VALUE (e.g. partition=gpu, time=120), got {item!r}")
        params[key] = int(value) if value.lstrip("-").isdigit() else value
    return params


class _ScriptOnlySlurm(submitit.SlurmExecutor):
    """A SlurmExecutor that can be built where srun is absent: it writes the sbatch script, it never submits."""

    @classmethod
    def affinity(cls) -> int:
        return 1


def executor(launcher: str, folder, jobs: int, slurm: dict | None = None, threads: int = 1, dry_run: bool = False):
    """A configured submitit executor. Slurm parameters are checked by submitit (an unknown one is named, with the
    valid ones); cpus_per_task defaults to the runs' thread count."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if launcher == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return ex
    ex = (_ScriptOnlySlurm if dry_run else submitit.SlurmExecutor)(folder=folder)
    ex.update_parameters(**{"array_parallelism": jobs, "cpus_per_task": threads, **(slurm or {})})
    return ex


def sbatch_script(folder, jobs: int, slurm: dict | None = None, threads: int = 1, n_runs: int = 1) -> str:
    """The sbatch script a Slurm launch of n_runs runs would submit (an array job when n_runs > 1); nothing is
    submitted: for --dry-run and the tests."""
    ex = executor("slurm", folder, jobs, slurm, threads, dry_run=True)
    # submitit's own script writer (module-private in submitit 1.5.4), as its array submission calls it
    return _make_sbatch_string(
        command=ex._submitit_command_str, folder=ex.folder, map_count=n_runs if n_runs > 1 else None, **ex.parameters
    )


def launch(
    fn: Callable,
    work: list[tuple],
    jobs: int,
    launcher: str = "local",
    folder=None,
    slurm: dict | None = None,
    progress: bool = True,
    desc: str = "runs",
    poll_s: float = 1.0,
    threads: int = 1,
) -> list:
    """fn(*args) for every args in `work`, through submitit; results in the order of `work`. Local: at most `jobs`
    processes at a time (a run that fails raises here with its traceback; the others already running are
    cancelled). Slurm: one array job with at most `jobs` tasks at a time."""
    ex = executor(launcher, Path(folder), jobs, slurm, threads)
    bar = tqdm(total=len(work), desc=desc, disable=not progress)
    if launcher == "slurm":
        with ex.batch():
            submitted = [ex.submit(fn, *args) for args in work]
        out = []
        for job in submitted:
            out.append(job.result())
            bar.update()
        bar.close()
        return out
    results: list = [None] * len(work)
    pending, running = list(enumerate(work)), {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                i, args = pending.pop(0)
                running[ex.submit(fn, *args)] = i
            for job in [j for j in running if j.done()]:
                results[running.pop(job)] = job.result()
                bar.update()
            time.sleep(poll_s if running else 0)
    finally:
        for job in running:  # an error or an interrupt: stop what still runs
            job.cancel(check=False)
        bar.close()
    return results
