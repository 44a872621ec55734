"""Shared by several test files: a run killed in the middle, as a killed process would leave it; a run record made
by hand."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd

from mtcrl_lite.analysis import record as R
from mtcrl_lite.run import train as T


@contextmanager
def interrupted_at(kill_step: int):
    """Inside the block, every method that train.build_method builds raises KeyboardInterrupt at global step
    `kill_step` (on every rank of a torchrun run alike)."""
    real = T.build_method

    def build_then_die(*args):
        m = real(*args)
        update = m.update

        def update_or_die(batches, step):
            if step == kill_step:
                raise KeyboardInterrupt
            return update(batches, step)

        m.update = update_or_die
        return m

    T.build_method = build_then_die
    try:
        yield
    finally:
        T.build_method = real


def fake_record(mtcrl_gain: float, noise: float, seeds=(0, 1, 2, 3, 4), study="06_multimnist", dataset="multimnist"):
    """Accuracy of MTL 0.8 on both tasks; MT-CRL's is (1 + gain) times it, plus seed noise."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        eps = rng.normal(0, noise)
        for method, acc in (("mtl", 0.8), ("mtcrl", 0.8 * (1 + mtcrl_gain) + eps)):
            for task in ("left", "right"):
                rows.append({"study": study, "variant": "", "dataset": dataset, "style": "", "method": method,
                             "seed": seed, "data_seed": 0, "epochs": 20, "digest": f"{method}{seed}",
                             "git_revision": "abc", "provenance": "tuned", "selected_epoch": 9, "task": task,
                             "metric": "acc", "higher_is_better": True, "val": acc, "test": acc, "A_mean": np.nan,
                             "A_min": np.nan, "A_max": np.nan, "run": f"{study}/{method}/seed{seed}"})  # fmt: skip
    return pd.DataFrame(rows, columns=R.COLUMNS)
