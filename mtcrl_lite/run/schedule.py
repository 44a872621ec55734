"""Learning-rate schedules as pure functions of the step (train.schedule).

The factor multiplies every parameter group's base learning rate (MT-CRL's Θ group keeps its lr_graph multiple).
It depends only on (step, total steps), so a resumed run sets exactly the rate an uninterrupted one would: no
scheduler state to checkpoint.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total_steps`.

    constant: 1. cosine: 0.5 * (1 + cos(pi * step / total_steps)), i.e. 1 at the first step, decaying to 0 at the
    end without restarts (Loshchilov & Hutter's SGDR, one cycle, minimum 0)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        if not 0 <= step < total_steps:
            raise ValueError(f"step {step} is outside the run's {total_steps} steps")
        return 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    raise ValueError(
        f"train.schedule must be one of {SCHEDULES}, got {schedule!r}; pass --set train.schedule=cosine or constant"
    )


def set_lr(optimizer, factor: float) -> None:
    """Set every group's lr to its base lr (its lr when first seen, stored in the group) times `factor`."""
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * factor
