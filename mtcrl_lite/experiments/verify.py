"""`make verify`: re-train a sample of the recorded runs here and print, per run and task, the difference from the
record, beside the seed-to-seed spread of that method in the record.

The same config, seed and code give bit-identical numbers on one machine; on another processor (other CPU kernels,
config.json's "processor") the numbers differ in their last digits and the difference grows over training. This
command measures how much, so that a reader can judge whether any verdict could change on their hardware.

A recorded run is re-trained only when the presets rebuild its exact config (the same digest from its dataset,
method, seed, the default scale and train.device=auto); others are skipped with a line that says so.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from mtcrl_lite.analysis import record as R
from mtcrl_lite.run import train as T
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.rundir import final_line

DEFAULT_SAMPLE = [
    ("movielens", "mtl", 0),
    ("movielens", "mtcrl", 0),
    ("multimnist", "mtl", 0),
    ("multimnist", "mtcrl", 0),
]


def verify(record: pd.DataFrame, sample, workdir: Path, overrides=None, log=print) -> pd.DataFrame:
    """One row per (run, task): recorded and re-trained test metric, their difference, and the method's seed std."""
    overrides = {"train.device": "auto", **(overrides or {})}
    rows = []
    for dataset, method, seed in sample:
        rec = record[(record.dataset == dataset) & (record.method == method) & (record.seed == seed)]
        cfg = make_config(dataset, method, seed, "default", overrides)
        rec = rec[rec.digest == cfg.digest()]
        if rec.empty:
            log(f"skip {dataset} {method} seed {seed}: no recorded run with digest {cfg.digest()}")
            continue
        log(f"re-training {dataset} {method} seed {seed} ({cfg.digest()}) ...")
        final = final_line(T.run(cfg, Path(workdir) / cfg.digest(), progress=False))
        spread = record[(record.dataset == dataset) & (record.method == method)].groupby("task").test.std(ddof=1)
        for r in rec.drop_duplicates("task").itertuples():
            new = final["metrics"]["test"][r.task][r.metric]
            rows.append(
                {"dataset": dataset, "method": method, "seed": seed, "task": r.task, "metric": r.metric,
                 "recorded": r.test, "here": new, "difference": new - r.test, "seed_std": spread.get(r.task),
                 "selected_epoch": r.selected_epoch, "selected_here": final["selected_epoch"]}
            )  # fmt: skip
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.experiments.verify", description=__doc__.split("\n\n")[0])
    p.add_argument("--record", default=str(R.RECORD))
    p.add_argument("--runs", nargs="*", default=None, metavar="DATASET:METHOD:SEED", help="default: seed 0 of "
                   "mtl and mtcrl on MovieLens and Multi-MNIST")  # fmt: skip
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sample = DEFAULT_SAMPLE if not args.runs else [(d, m, int(s)) for d, m, s in (r.split(":") for r in args.runs)]
    overrides = dict(s.split("=", 1) for s in args.sets)
    with tempfile.TemporaryDirectory() as work:
        table = verify(R.read(args.record), sample, Path(work), overrides)
    if table.empty:
        print("nothing verified: none of the sampled runs is in the record", file=sys.stderr)
        return 1
    print(table.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    ratio = (table.difference.abs() / table.seed_std).max()
    print(f"largest |difference| / seed-to-seed std: {ratio:.3g} (0: bit-identical to the record)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
