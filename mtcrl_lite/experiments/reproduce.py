"""The tiers behind `make reproduce-quick`, `make reproduce`, `make reproduce-all` and `make results/NN.ipynb`:
which notebooks each executes with papermill, with what, and how long each took on 2 CPU cores.

    python -m mtcrl_lite.experiments.reproduce quick|paper|all [--only NAME ...] [--dry-run] [-- PAPERMILL ARGS]

It prints the plan and its expected time first, then one line when each notebook starts and one when it ends.
quick runs every notebook in smoke mode (MTCRL_SMOKE=1, as `make test`): tiny data and few epochs, to check that
the whole pipeline runs; its outputs go to results/quick/ (executed notebooks, and run folders in
results/quick/smoke/), each notebook headed by a cell that says these are not the paper's numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mtcrl_lite.paths import REPO_ROOT


@dataclass(frozen=True)
class Step:
    """One notebook of a tier: its expected minutes on 2 CPU cores, its papermill arguments and its environment."""

    notebook: str
    minutes: float
    args: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)
    shown: str = ""  # how the plan names `args` (default: the arguments themselves)


def _design_all() -> tuple[str, ...]:
    """Notebook 08's whole MT-CRL design space (its CPU default runs ablations.DESIGN_CPU)."""
    from mtcrl_lite.experiments.ablations import DESIGN

    return ("-y", json.dumps({"CONDITIONS": list(DESIGN)}))


QUICK_DIR = "results/quick"
QUICK_NOTE = (
    "**Quick tier: smoke scale, not the paper's numbers.** Executed by `make reproduce-quick` with MTCRL_SMOKE=1 "
    "(tiny data, a few epochs, few seeds): it shows that this notebook runs end to end, nothing more. The CPU-scale "
    "results are `make reproduce` (results/), the committed record is `make report`."
)
# Expected minutes on 2 CPU cores. paper: each notebook measured alone from scratch at its CPU default (README
# "Measured", 2026-11-24 to 27); quick: below.
PAPER = (
    Step("01_theory_proposition1", 8),
    Step("02_synthetic_spurious", 6),
    Step("03_taskonomy", 45),
    Step("04_cityscapes", 10),
    Step("05_nyuv2", 15),
    Step("06_multimnist", 50),
    Step("07_movielens", 14),
    Step("08_ablations", 85),
    Step("09_main_results", 1),
)
# measured 2026-12-03 on a clean clone (make reproduce-quick: 46 min 12 s), 2 cores shared with other jobs (load
# average 4-9): on idle cores expect less
QUICK_MINUTES = {
    "01_theory_proposition1": 0.9,
    "02_synthetic_spurious": 2.4,
    "03_taskonomy": 2.9,
    "04_cityscapes": 1.4,
    "05_nyuv2": 2.3,
    "06_multimnist": 6.5,
    "07_movielens": 11.2,
    "08_ablations": 11.6,
    "09_main_results": 0.3,
    "10_beyond_the_paper": 6.8,
}
TIERS = {
    "quick": tuple(Step(name, m, env={"MTCRL_SMOKE": "1"}) for name, m in QUICK_MINUTES.items()),
    "paper": PAPER,
    # + notebook 10 (newer baselines, Fashion-MNIST columns) and notebook 08's whole design space (+30 runs)
    "all": tuple(
        Step(s.notebook, 115, _design_all(), shown="CONDITIONS = all of ablations.DESIGN")
        if s.notebook == "08_ablations"
        else s
        for s in PAPER
    )
    + (Step("10_beyond_the_paper", 300, ("-p", "TRAIN", "True")),),  # trains (its default reads the record)
}
WHAT = {
    "quick": "every notebook in smoke mode, into results/quick/ (NOT the paper's numbers)",
    "paper": "notebooks 01-09 at their CPU default, into results/",
    "all": "notebooks 01-10 at their CPU default, 08 with its whole design space, into results/",
}


def duration(seconds: float) -> str:
    """'4 h 05 min', '12 min 03 s', '40 s'."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def output(tier: str, step: Step) -> str:
    return f"{QUICK_DIR if tier == 'quick' else 'results'}/{step.notebook}.ipynb"


def select(tier: str, only: list[str] | None) -> list[Step]:
    """The steps of `tier`, or those named in `only` (a notebook not in `tier` is taken from tier all)."""
    if not only:
        return list(TIERS[tier])
    pool = {s.notebook: s for s in TIERS["all"]} | {s.notebook: s for s in TIERS[tier]}
    unknown = [n for n in only if n not in pool]
    if unknown:
        raise SystemExit(f"unknown notebook(s) {unknown}; valid: {sorted(pool)} (notebooks/NAME.ipynb)")
    return [pool[n] for n in only]


def command(tier: str, step: Step, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "papermill", "--cwd", "notebooks", f"notebooks/{step.notebook}.ipynb",
            output(tier, step), *step.args, *extra]  # fmt: skip


def environment(tier: str, step: Step) -> dict:
    env = {**os.environ, **step.env}
    if tier == "quick":
        env["MTCRL_RESULTS"] = str(REPO_ROOT / QUICK_DIR)
    return env


def label_quick(path: Path) -> None:
    """Head the executed notebook with QUICK_NOTE (once)."""
    nb = json.loads(path.read_text())
    if nb["cells"] and nb["cells"][0].get("id") == "quick-tier":
        return
    cell = {"cell_type": "markdown", "id": "quick-tier", "metadata": {}, "source": [QUICK_NOTE]}
    path.write_text(json.dumps({**nb, "cells": [cell, *nb["cells"]]}, indent=1, ensure_ascii=False) + "\n")


def plan(tier: str, steps: list[Step], extra: list[str]) -> list[str]:
    """The lines printed before anything runs."""
    total = sum(s.minutes for s in steps) * 60
    lines = [f"reproduce {tier}: {WHAT[tier]}; {len(steps)} notebook(s), expected ≈ {duration(total)} on 2 CPU cores"
             " (finished runs are reused; a killed run resumes):"]  # fmt: skip
    for i, s in enumerate(steps, 1):
        shown = " ".join([*(f"{k}={v}" for k, v in s.env.items()), *([s.shown] if s.shown else s.args), *extra])
        lines.append(f"  [{i}/{len(steps)}] {s.notebook:<24} ≈ {duration(s.minutes * 60):>12}  -> {output(tier, s)} "
                     f"({shown or 'defaults'})")  # fmt: skip
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.experiments.reproduce", description=__doc__.split("\n")[0])
    p.add_argument("tier", choices=sorted(TIERS))
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these notebooks (e.g. 06_multimnist)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the commands; run nothing")
    p.epilog = "Arguments after -- go to papermill (e.g. -- -p DEVICE cuda)."
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = p.parse_args(argv[:cut]), argv[cut + 1 :]
    steps = select(args.tier, args.only)
    print("\n".join(plan(args.tier, steps, extra)), flush=True)
    if args.tier == "quick":
        (REPO_ROOT / QUICK_DIR).mkdir(parents=True, exist_ok=True)
        (REPO_ROOT / QUICK_DIR / "README.md").write_text(QUICK_NOTE + "\n")
    start = time.time()
    for i, s in enumerate(steps, 1):
        cmd = command(args.tier, s, extra)
        if args.dry_run:
            print(" ".join(cmd))
            continue
        (REPO_ROOT / output(args.tier, s)).parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        print(f"[{i}/{len(steps)}] {s.notebook}: started {time.strftime('%H:%M')}, "
              f"expected ≈ {duration(s.minutes * 60)}", flush=True)  # fmt: skip
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=environment(args.tier, s))
        if done.returncode != 0:
            print(f"[{i}/{len(steps)}] {s.notebook}: FAILED after {duration(time.time() - t0)} (exit "
                  f"{done.returncode}); partly executed: {output(args.tier, s)}", flush=True)  # fmt: skip
            return done.returncode
        if args.tier == "quick":
            label_quick(REPO_ROOT / output(args.tier, s))
        print(
            f"[{i}/{len(steps)}] {s.notebook}: done in {duration(time.time() - t0)} -> {output(args.tier, s)}",
            flush=True,
        )
    if not args.dry_run:
        print(f"reproduce {args.tier}: {len(steps)} notebook(s) in {duration(time.time() - start)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
