"""Results files: atomic writes, reading runs back, and a tidy long table for notebooks.

A run directory holds config.json, results.jsonl (one JSON object per line, "kind" = "epoch" or "final")
and checkpoint.pt while the run is unfinished.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def is_finished(run_dir: Path) -> bool:
    rows = read_jsonl(Path(run_dir) / "results.jsonl")
    return bool(rows) and rows[-1].get("kind") == "final"


def tidy(run_dir: Path) -> pd.DataFrame:
    """One row per (epoch or selection rule, split, task, metric) of one run, with its identifying columns.

    `epoch` rows carry selection='epoch'; the final line yields selection='best_val' (the epoch chosen on
    validation) and selection='last10' (mean of the last 10 % of epochs). `primary` marks each task's primary metric
    (the one model selection and the paper's Δ use).
    """
    run_dir = Path(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    ident = {"dataset": cfg["dataset"], "method": cfg["method"], "seed": cfg["seed"],
             "config_hash": cfg["digest"], "run_dir": str(run_dir)}
    lines = read_jsonl(run_dir / "results.jsonl")
    primary = lines[-1].get("primary", {}) if lines and lines[-1]["kind"] == "final" else {}
    rows = []
    for line in lines:
        if line["kind"] == "epoch":
            blocks = [("epoch", line["epoch"], line["metrics"])]
        else:
            blocks = [("best_val", line["selected_epoch"], line["metrics"]), ("last10", None, line["last10"])]
        for selection, epoch, metrics in blocks:
            for split, by_task in metrics.items():
                for task, by_metric in by_task.items():
                    for metric, value in by_metric.items():
                        rows.append({**ident, "selection": selection, "epoch": epoch, "split": split,
                                     "task": task, "metric": metric, "value": value,
                                     "primary": primary.get(task, "acc") == metric})
    return pd.DataFrame(rows)


def collect(run_dirs) -> pd.DataFrame:
    frames = [tidy(d) for d in run_dirs if (Path(d) / "config.json").exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def final_line(run_dir: Path) -> dict:
    rows = read_jsonl(Path(run_dir) / "results.jsonl")
    if not rows or rows[-1]["kind"] != "final":
        raise FileNotFoundError(f"{run_dir} holds no finished run")
    return rows[-1]


def final_graphs(run_dirs) -> list[tuple[dict, list]]:
    """(config, final routing graph A as nested lists) of every finished run that has a graph (MT-CRL)."""
    out = []
    for d in run_dirs:
        a = final_line(d).get("A")
        if a is not None:
            out.append((json.loads((Path(d) / "config.json").read_text()), a))
    return out
