"""Grids of runs (methods x seeds) and the summaries notebooks print.

    python -m mtcrl_lite.grid.sweep --dataset multimnist --methods stl mtl mtcrl --seeds 0 1 2 --out results/x

Finished runs are reused, interrupted ones resume; each run lives in OUT/METHOD/seed{S}-{config digest}.
`run_configs` runs any list of configs the same way (the hyper-parameter search uses it) and can record a run
whose loss became non-finite (DIR/failed.json) instead of stopping, so that a search survives a diverging draw.
One run at a time runs in this process; --jobs N > 1 or --launcher slurm hand the runs to submitit (launch.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from mtcrl_lite.baselines.methods import NonFiniteLossError
from mtcrl_lite.grid.launch import LAUNCHERS, launch, sbatch_script, slurm_parameters
from mtcrl_lite.run.checkpoint import discard_state
from mtcrl_lite.run.config import make_config, parse_sets
from mtcrl_lite.run.rundir import atomic_write_text, collect, is_finished, read_json
from mtcrl_lite.run.train import CLI_ERRORS, print_error, run

FAILED = "failed.json"


def run_dir(root, cfg) -> Path:
    return Path(root) / cfg.method / f"seed{cfg.seed}-{cfg.digest()}"


def run_grid(
    dataset: str,
    methods,
    seeds,
    root,
    scale: str = "default",
    overrides=None,
    force: bool = False,
    progress: bool = True,
    tuned: bool = True,
    jobs: int = 1,
    launcher: str = "local",
    slurm: dict | None = None,
) -> list[Path]:
    cfgs = [make_config(dataset, m, s, scale, overrides, tuned) for m in methods for s in seeds]  # validate all first
    return run_configs(
        cfgs, [run_dir(root, c) for c in cfgs], force, progress, jobs=jobs, launcher=launcher, slurm=slurm
    )


def failure(out) -> dict | None:
    """The recorded failure of run directory `out` (see run_configs), or None."""
    path = Path(out) / FAILED
    return read_json(path) if path.exists() else None


def run_configs(
    cfgs,
    dirs,
    force: bool = False,
    progress: bool = True,
    record_failures: bool = False,
    desc: str = "runs",
    jobs: int = 1,
    launcher: str = "local",
    slurm: dict | None = None,
) -> list[Path]:
    """Run (or reuse, or resume) every config in its directory. record_failures: a run whose loss becomes
    non-finite writes DIR/failed.json (error, digest) and the next config runs; a recorded failure with the same
    digest is reused like a finished run (force retries it). jobs = 1 (local): one run after another in this
    process; jobs > 1 or launcher = "slurm": through submitit (launch.launch), at most `jobs` at a time, logs in
    _submitit/ beside the run folders. Each run fixes its own thread count (train.threads), so the numbers do not
    depend on jobs or on the launcher."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    threads = max((c.train.threads for c in cfgs), default=1)
    if launcher == "local" and jobs > 1 and jobs * threads > (os.cpu_count() or 1):
        warnings.warn(
            f"{jobs} runs at a time with train.threads = {threads} each oversubscribe the "
            f"{os.cpu_count()} CPU cores (measured: 30-90x slower epochs); pass --set train.threads=1 or "
            f"fewer jobs",
            RuntimeWarning,
            stacklevel=2,
        )
    work = [(cfg, Path(d), force, record_failures) for cfg, d in zip(cfgs, dirs)]
    if launcher == "local" and (jobs == 1 or len(work) < 2):
        return [_run_one(*w) for w in tqdm(work, desc=desc, disable=not progress)]
    todo = [i for i, w in enumerate(work) if not reusable(*w[:3])]  # finished runs are not launched again
    done = (
        launch(
            _run_one,
            [work[i] for i in todo],
            jobs,
            launcher,
            submitit_folder(dirs),
            slurm,
            progress,
            desc,
            threads=threads,
        )
        if todo
        else []
    )
    out = [w[1] for w in work]
    for i, d in zip(todo, done):
        out[i] = d
    return out


def reusable(cfg, d: Path, force: bool) -> bool:
    """True if run directory d already holds this config's finished run, or its recorded failure (not with force)."""
    if force:
        return False
    old = failure(d)
    if old is not None:
        return old.get("digest") == cfg.digest()
    return is_finished(d, cfg.digest())


def submitit_folder(dirs) -> Path:
    """submitit's logs and pickles: _submitit/ in the folder that holds every run folder."""
    return Path(os.path.commonpath([str(Path(d).resolve().parent) for d in dirs])) / "_submitit"


def _run_one(cfg, d: Path, force: bool, record_failures: bool) -> Path:
    if reusable(cfg, d, force):
        return d
    (d / FAILED).unlink(missing_ok=True)
    try:
        return run(cfg, d, force=force, progress=False, log=lambda *_: None)
    except NonFiniteLossError as e:
        if not record_failures:
            raise
        discard_state(d)
        atomic_write_text(d / FAILED, json.dumps({"digest": cfg.digest(), "error": str(e)}, indent=1))
        return d


def summary(df: pd.DataFrame, selection: str = "best_val", metric: str = "acc") -> pd.DataFrame:
    """mean ± std over seeds of `metric`, rows = method, columns = (split, task). metric="primary": each task's
    primary metric, named in the column (dense tasks: "segment_semantic (miou)", "depth_zbuffer (abs_err)", ...)."""
    if metric == "primary":
        d = df[(df.selection == selection) & df.primary.astype(bool)]
        d = d.assign(task=d.task + " (" + d.metric + ")")
    else:
        d = df[(df.selection == selection) & (df.metric == metric)]
    g = d.groupby(["method", "split", "task"]).value.agg(["mean", "std", "count"])
    cell = g.apply(lambda r: f"{r['mean']:.3f} ± {0 if pd.isna(r['std']) else r['std']:.3f}", axis=1)
    table = cell.unstack(["split", "task"])
    order = [
        c
        for c in [("train", t) for t in sorted(d.task.unique())]
        + [("val", t) for t in sorted(d.task.unique())]
        + [("test", t) for t in sorted(d.task.unique())]
        if c in table.columns
    ]
    table = table[order]
    table[("n_seeds", "")] = g["count"].groupby("method").min()
    return table.loc[[m for m in dict.fromkeys(d.method) if m in table.index]]


def param_counts(run_dirs) -> dict[str, int]:
    """method -> number of parameters, read from the runs' config.json."""
    out = {}
    for d in run_dirs:
        cfg = read_json(Path(d) / "config.json")
        out[cfg["method"]] = cfg["n_params"]
    return out


def add_launcher_args(p: argparse.ArgumentParser, dry_run: bool = True) -> None:
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at a time: 1 = one after another in this process; "
        "N > 1: N submitit processes (local), or N array tasks at a time (slurm)",
    )
    p.add_argument("--launcher", default="local", choices=LAUNCHERS, help="submitit executor (default local)")
    p.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a submitit Slurm parameter: partition=P, time=MINUTES, gpus_per_node=N, mem=32GB, ...",
    )
    if dry_run:
        p.add_argument(
            "--dry-run", action="store_true", help="print the plan (and, for slurm, the sbatch script); run nothing"
        )


def print_dry_run(cfgs, dirs, args) -> int:
    """What a launch would do, without running or submitting anything."""
    threads = max((c.train.threads for c in cfgs), default=1)
    print(f"{len(cfgs)} runs, launcher {args.launcher}, {args.jobs} at a time, {threads} thread(s) each:")
    for c, d in zip(cfgs, dirs):
        print(f"  {c.method} seed {c.seed} -> {d}")
    if args.launcher == "slurm":
        print(sbatch_script(submitit_folder(dirs), args.jobs, slurm_parameters(args.slurm), threads, len(cfgs)))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.grid.sweep")
    p.add_argument("--dataset", required=True)
    p.add_argument("--methods", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", required=True)
    p.add_argument("--scale", default="default", choices=["smoke", "default", "full"])
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--force", action="store_true")
    p.add_argument("--untuned", action="store_true", help="ignore tuning/tuned.json (the registry defaults)")
    add_launcher_args(p)
    args = p.parse_args(argv)
    try:
        slurm = slurm_parameters(args.slurm)
        if args.dry_run:
            cfgs = [
                make_config(args.dataset, m, s, args.scale, parse_sets(args.sets), not args.untuned)
                for m in args.methods
                for s in args.seeds
            ]
            return print_dry_run(cfgs, [run_dir(args.out, c) for c in cfgs], args)
        dirs = run_grid(
            args.dataset,
            args.methods,
            args.seeds,
            args.out,
            args.scale,
            parse_sets(args.sets),
            args.force,
            tuned=not args.untuned,
            jobs=args.jobs,
            launcher=args.launcher,
            slurm=slurm,
        )
    except CLI_ERRORS as e:
        return print_error(e)
    df = collect(dirs)
    metric = df.metric[df.primary.astype(bool)].iloc[0] if len(df) else "acc"  # e.g. rmse for MovieLens
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(df, metric=metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
