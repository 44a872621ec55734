"""Runs per hour of notebook 06's sweep: one run after another in one process (jobs 1) vs two one-thread submitit
processes (jobs 2), the same configs, fresh folders. Target (issue #14): jobs 2 >= 1.5x jobs 1 on 2 cores.

    python benchmarks/sweep_throughput.py [--methods mtl mtcrl] [--seeds 0 1] [--epochs 6]

The runs are notebook 06's default-scale runs shortened to --epochs (the per-epoch cost is what scales); the two
modes must give the same numbers, which the script checks. Measured 2026-11-26 (2 idle cores): 6 epochs: jobs 1
112.6 s, jobs 2 69.4 s for 4 runs = 1.62x, identical numbers; at 2 epochs 1.38x (each submitit job starts a fresh
Python with torch: a few seconds that short runs do not amortise).
"""

import argparse
import tempfile
import time
from pathlib import Path

from mtcrl_lite.grid.sweep import run_configs
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.rundir import read_jsonl


def strip_times(rows):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="+", default=["mtl", "mtcrl"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--epochs", type=int, default=6)
    args = p.parse_args(argv)
    over = {"train.threads": 1, "train.epochs": args.epochs, "train.device": "auto"}
    cfgs = [make_config("multimnist", m, s, "default", over) for m in args.methods for s in args.seeds]
    out, rate = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            dirs = [Path(tmp) / f"jobs{jobs}" / c.method / f"seed{c.seed}" for c in cfgs]
            t0 = time.perf_counter()
            out[jobs] = run_configs(cfgs, dirs, progress=False, jobs=jobs)
            seconds = time.perf_counter() - t0
            rate[jobs] = len(cfgs) / seconds * 3600
            print(f"jobs {jobs}: {len(cfgs)} runs of {args.epochs} epochs in {seconds:.1f} s = {rate[jobs]:.0f} runs/h")
        same = all(
            strip_times(read_jsonl(a / "results.jsonl")) == strip_times(read_jsonl(b / "results.jsonl"))
            for a, b in zip(out[1], out[2])
        )
    print(f"ratio jobs 2 / jobs 1: {rate[2] / rate[1]:.2f}x (target >= 1.5x); identical numbers: {same}")


if __name__ == "__main__":
    main()
