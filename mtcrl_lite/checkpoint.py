"""Checkpoints of a run directory: the per-epoch training state (resume) and the validation-selected weights.

Both are written to a temporary file and renamed, so a run killed mid-write keeps the previous complete file.
"""
from __future__ import annotations

from pathlib import Path

import torch

CHECKPOINT, BEST = "checkpoint.pt", "model_best.pt"


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".pt.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_state(run_dir: Path, epoch: int, method) -> None:
    """Everything needed to resume after `epoch`: the method's state (model and its buffers) and the optimizer's."""
    _atomic_save({"epoch": epoch, "method": method.state_dict(), "optimizer": method.optimizer.state_dict()},
                 Path(run_dir) / CHECKPOINT)


def load_state(run_dir: Path, method, device) -> int | None:
    """Restore the last checkpoint into `method`; returns the epoch to start from, or None if there is none."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    ck = torch.load(path, map_location=device, weights_only=False)
    method.load_state_dict(ck["method"])
    method.optimizer.load_state_dict(ck["optimizer"])
    return ck["epoch"] + 1


def discard_state(run_dir: Path) -> None:
    (Path(run_dir) / CHECKPOINT).unlink(missing_ok=True)


def save_best(run_dir: Path, model) -> None:
    _atomic_save(model.state_dict(), Path(run_dir) / BEST)


def load_best(run_dir: Path, model, device) -> None:
    model.load_state_dict(torch.load(Path(run_dir) / BEST, map_location=device))
