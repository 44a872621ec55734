"""Notebook 10's columns: for each dataset of the extended table, the runs that make it.

A column's runs are the *same configs* (same digests, same folder) as those of the notebook that owns the dataset,
so notebook 10 reuses them and trains only what that notebook lacks (the newer methods):

* Multi-MNIST and MovieLens: notebooks 06 and 07; Multi-Fashion and Fashion+MNIST: notebook 10 itself.
* Taskonomy, CityScapes, NYUv2: notebooks 03, 04, 05 (`dense_benchmark`): the real data when it is found under
  DATA_ROOT/<dataset>, else the scene stand-in in that benchmark's style, labelled † — never a real-dataset number.
  The dense columns have their own seeds (DENSE_SEEDS, 3 like notebooks 03–05) and compare against the
  architecture-matched MTL (normalised shared map), the only MTL of notebook 10.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mtcrl_lite.analysis import record as R
from mtcrl_lite.data.catalogue import CATALOGUE
from mtcrl_lite.experiments import dense as dense_benchmark
from mtcrl_lite.experiments.notebook import results_dir, run_overrides
from mtcrl_lite.paths import results_root
from mtcrl_lite.run.config import make_config

# the small columns (label and folder: the data catalogue's) and the overrides of the notebook that owns their runs
SMALL = {"multimnist": {}, "multifashion": {}, "fashionmnist": {}, "movielens": {"data.target": "rating"}}
DENSE = tuple(dense_benchmark.BENCHMARKS)  # taskonomy, cityscapes, nyuv2
NAMES = (*SMALL, *DENSE)  # the values DATASETS may take


@dataclass(frozen=True)
class Column:
    """One column of the extended table: what notebook 10 trains for it and where."""

    name: str  # the DATASETS entry
    label: str  # printed name, with " †" on a synthetic stand-in
    dataset: str  # the registry dataset its runs train on ("scenes" for a dense stand-in)
    seeds: tuple[int, ...]
    home: Path  # the runs' folder (shared with the owning notebook unless RESULTS_DIR is given)
    overrides: dict
    threads: int  # train.threads of its runs (Taskonomy's keep notebook 03's 2)

    @property
    def stand_in(self) -> bool:
        return self.dataset == dense_benchmark.STAND_IN

    def jobs(self, requested: int) -> int:
        """Runs at a time: `requested`, fewer where that many runs of `threads` threads would oversubscribe the
        CPU cores (numbers do not depend on it: every run fixes its thread count)."""
        return max(1, min(requested, (os.cpu_count() or 1) // self.threads))


def plan(P) -> list[Column]:
    """The columns of notebook 10 from its validated parameters (SMOKE, SCALE, SEEDS, DENSE_SEEDS, EPOCHS,
    DATASETS, DEVICE, DATA_ROOT, RESULTS_DIR), in the order of DATASETS. In smoke mode one seed and results/smoke/;
    with RESULTS_DIR every column's runs go to RESULTS_DIR/<name> instead of the owning notebook's folder."""
    scale = "smoke" if P.SMOKE else P.SCALE
    columns = []
    for name in P.DATASETS:
        if name in SMALL:
            label, folder, own = CATALOGUE[name].label, CATALOGUE[name].folder, SMALL[name]
            dataset, seeds, over = name, P.SEEDS, {**run_overrides(P), **own}
        elif name in DENSE:
            bench = dense_benchmark.get_benchmark(name)
            where = str(Path(P.DATA_ROOT) / name) if P.DATA_ROOT else None
            dataset, own, _ = dense_benchmark.run_data(bench, where, scale)
            label = bench.label + (" †" if dataset == dense_benchmark.STAND_IN else "")
            folder, seeds, over = bench.folder, P.DENSE_SEEDS, {**run_overrides(P, data_root=False), **own}
        else:
            raise KeyError(f"unknown DATASETS entry {name!r}; valid: {list(NAMES)}")
        home = results_dir(P, folder) / (name if P.RESULTS_DIR else "")  # RESULTS_DIR: a folder per column
        threads = make_config(dataset, "mtl", 0, scale, over).train.threads
        columns.append(Column(name, label, dataset, tuple(seeds[:1] if P.SMOKE else seeds), home, over, threads))
    return columns


def from_record(columns: list[Column], methods, record=None) -> tuple[dict, list[str]]:
    """The columns' runs as the committed run record holds them (tidy, `methods` and the column's seeds only), with
    one line per column saying what the record has; a column the record lacks is left out and its line says so."""
    record = R.read() if record is None else record
    found, lines = {}, []
    for c in columns:
        if not c.home.is_relative_to(results_root()):
            lines.append(f"{c.label:14s} not in the record: its runs are in {c.home} (RESULTS_DIR), not the record's")
            continue
        study, _, variant = c.home.relative_to(results_root()).as_posix().partition("/")
        runs = R.column(record, study, variant, c.dataset)
        runs = runs[runs.method.isin(methods) & runs.seed.isin(c.seeds)]
        if runs.empty or "mtl" not in set(runs.method):
            lines.append(f"{c.label:14s} not in the record (TRAIN=True trains it)")
            continue
        found[c.label] = runs
        seeds = sorted(int(s) for s in runs.seed.unique())
        lines.append(f"{c.label:14s} {runs.method.nunique()} methods, seeds {seeds}")
    return found, lines
