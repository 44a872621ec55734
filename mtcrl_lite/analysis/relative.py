"""Relative improvement over a baseline (Δ), in the three conventions found in the MTL literature.

All return an *improvement* in percent: positive means better than the baseline. (MTAN / Nash-MTL print the
all-metrics variant with the opposite sign, as a "drop" Δm where lower is better.)

* ``paper`` (MT-CRL's tables, docs/METHOD §6): Δ = (1/T) Σ_t s_t (M_t − B_t) / B_t · 100 over each task's primary
  metric, s_t = +1 if higher is better, −1 otherwise.
* ``all_metrics`` (MTAN, Nash-MTL): the same mean taken over every metric of every task.
* ``per_task_mean`` (LibMTL): first the mean over the metrics of each task, then the mean over tasks.
"""

from __future__ import annotations

import numpy as np

CONVENTIONS = ("paper", "all_metrics", "per_task_mean")


def relative_improvement(
    values: dict[str, dict[str, float]],
    base: dict[str, dict[str, float]],
    higher_is_better: dict[str, dict[str, bool]],
    convention: str = "paper",
    primary: dict[str, str] | None = None,
) -> float:
    """values/base/higher_is_better: {task: {metric: ...}}; `primary` {task: metric} is needed for 'paper'."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; valid: {CONVENTIONS}")
    if set(values) != set(base):
        raise ValueError(f"tasks differ from the baseline's: {sorted(values)} vs {sorted(base)}")

    def rel(task, metric):
        b = base[task][metric]
        if b == 0:
            raise ValueError(f"baseline {task}/{metric} is 0: relative change undefined")
        sign = 1.0 if higher_is_better[task][metric] else -1.0
        return sign * (values[task][metric] - b) / abs(b) * 100.0

    if convention == "paper":
        if primary is None:
            raise ValueError("convention 'paper' needs the primary metric of every task")
        return float(np.mean([rel(t, primary[t]) for t in values]))
    per_task = [[rel(t, m) for m in values[t]] for t in values]
    if convention == "all_metrics":
        return float(np.mean([x for row in per_task for x in row]))
    return float(np.mean([np.mean(row) for row in per_task]))
