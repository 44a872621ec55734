"""Where things live on disk. Everything is overridable; defaults are relative to the repo root."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root(override: str | os.PathLike | None = None) -> Path:
    """Data cache: argument, else $MTCRL_DATA, else <repo>/data/cache."""
    if override:
        return Path(override)
    return Path(os.environ.get("MTCRL_DATA", REPO_ROOT / "data" / "cache"))


def results_root(override: str | os.PathLike | None = None) -> Path:
    """Results: argument, else $MTCRL_RESULTS, else <repo>/results."""
    if override:
        return Path(override)
    return Path(os.environ.get("MTCRL_RESULTS", REPO_ROOT / "results"))
