"""Evaluation and model selection: streaming metrics of a split, the validation score, the final results line."""

from __future__ import annotations

import math

import numpy as np
import torch

from mtcrl_lite.core.tasks import HIGHER_IS_BETTER
from mtcrl_lite.data.base import MTLData, Split
from mtcrl_lite.data.batching import eval_batches, to_device


@torch.no_grad()
def evaluate(
    method, data: MTLData, split: Split, device, max_n: int | None = None, chunk: int = 256, num_workers: int = 0
) -> dict:
    """{task: {metric: value}} on the first `max_n` samples of `split` (all if None), accumulated batch by batch
    (tasks.TaskMeter), so memory does not grow with the split."""
    method.eval()
    meters = {t.name: t.meter() for t in data.tasks}
    for batch in eval_batches(split, max_n, chunk, num_workers, device):
        x, y = to_device(batch, device)
        out = method.predict(x)
        for name, m in meters.items():
            m.update(out[name], y[name])
    method.train()
    return {name: m.compute() for name, m in meters.items()}


def selection_score(metrics: dict, tasks) -> float:
    """Mean over tasks of the primary validation metric, signed so that higher is better."""
    return float(
        np.mean([metrics["val"][t.name][t.primary] * (1 if HIGHER_IS_BETTER[t.primary] else -1) for t in tasks])
    )


def finalize(epochs: list[dict], tasks) -> dict:
    best = max(epochs, key=lambda r: (selection_score(r["metrics"], tasks), -r["epoch"]))
    tail = epochs[-max(1, math.ceil(0.1 * len(epochs))) :]
    last10 = {
        split: {
            t: {m: float(np.mean([r["metrics"][split][t][m] for r in tail])) for m in by_m} for t, by_m in by_t.items()
        }
        for split, by_t in epochs[-1]["metrics"].items()
    }
    return {
        "kind": "final",
        "selection": "best_val: max mean val primary metric over tasks",
        "selected_epoch": best["epoch"],
        "metrics": best["metrics"],
        "last10": last10,
        "last10_epochs": [r["epoch"] for r in tail],
        "A": best.get("A"),
        "primary": {t.name: t.primary for t in tasks},
    }
