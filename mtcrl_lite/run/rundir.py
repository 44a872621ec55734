"""Results files: atomic writes, reading runs back, and a tidy long table for notebooks.

A run directory holds config.json, results.jsonl (one JSON object per line, "kind" = "epoch" or "final")
and checkpoint.pt while the run is unfinished.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path

import pandas as pd


class CorruptFileError(ValueError):
    """A run's file cannot be parsed (truncated or damaged); the message names the file, the line and the fix."""


class RunWriteError(RuntimeError):
    """A file cannot be written (disk full, quota, permissions, I/O error); the message names it, the cause and the
    fix. Nothing is left behind: the previous complete file, if any, stays in place."""


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file and rename it to `path`; the file gets the usual umask mode (e.g. 0644),
    so that a shared results directory can be read by collaborators (mkstemp would make it 0600). A failed write
    (e.g. a full disk) removes the temporary file and is a RunWriteError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            _write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if not isinstance(e, OSError):
            raise
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        raise RunWriteError(
            f"cannot write {path} ({e.strerror or e}): "
            + ("the disk is full; free space on it" if full else "fix the cause")
            + f" (or choose another folder), then run the same command again: a run resumes from its last "
            f"checkpoint ({len(data)} bytes were to be written)"
        ) from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


RERUN = "rerun with --force to start the run over (or restore the file)"


def _corrupt(path: Path, lineno: int, why: str, fix: str = RERUN) -> CorruptFileError:
    return CorruptFileError(f"{path} line {lineno} {why}: the file is truncated or damaged; {fix}")


def read_json(path: Path, fix: str = RERUN) -> dict:
    """A JSON file (config.json); a parse error names the file, the line and `fix`."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise _corrupt(path, e.lineno, f"is not valid JSON ({e.msg})", fix) from None


def read_jsonl(path: Path, check=None) -> list[dict]:
    """One JSON object per line ([] if the file does not exist); a parse error, or a line for which
    `check(row, rows before)` returns a problem, names the file and the line."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise _corrupt(path, i, f"is not valid JSON ({e.msg})") from None
            problem = check and check(rows[-1], rows[:-1])
            if problem:
                raise _corrupt(path, i, f"is not a line of a run's results ({problem})") from None
    return rows


def _numbers(block, depth: int) -> bool:
    """`block` is a dict nested `depth` deep (split -> task -> metric) whose leaves are numbers."""
    if depth == 0:
        return isinstance(block, (int, float)) and not isinstance(block, bool)
    return isinstance(block, dict) and all(isinstance(k, str) and _numbers(v, depth - 1) for k, v in block.items())


# what the readers of results.jsonl rely on, per kind of line: key -> check of its value
RESULT_SCHEMA = {
    "epoch": {"epoch": lambda v: type(v) is int, "metrics": lambda v: _numbers(v, 3)},
    "final": {
        "selected_epoch": lambda v: type(v) is int,
        "metrics": lambda v: _numbers(v, 3),
        "last10": lambda v: _numbers(v, 3),
        "primary": lambda v: isinstance(v, dict) and all(isinstance(m, str) for m in v.values()),
    },
}


def result_line_problem(row, before: list[dict]) -> str | None:
    """Why `row` cannot follow the lines `before` in results.jsonl (None: it can). Epoch lines come in order 0, 1, ...;
    one final line closes the file."""
    kind = row.get("kind") if isinstance(row, dict) else None
    if kind not in RESULT_SCHEMA:
        return f"'kind' is {kind!r}, not one of {sorted(RESULT_SCHEMA)}"
    bad = [k for k, ok in RESULT_SCHEMA[kind].items() if k not in row or not ok(row[k])]
    if bad:
        return f"{kind} line: {', '.join(map(repr, bad))} missing or malformed"
    if before and before[-1]["kind"] == "final":
        return "a line after the final line"
    if kind == "epoch" and row["epoch"] != len(before):
        return f"epoch {row['epoch']} where epoch {len(before)} belongs"
    return None


def read_results(run_dir: Path) -> list[dict]:
    """The lines of a run's results.jsonl ([] if there is none), each checked against RESULT_SCHEMA."""
    return read_jsonl(Path(run_dir) / "results.jsonl", result_line_problem)


def is_finished(run_dir: Path, digest: str | None = None) -> bool:
    """True if `run_dir` holds a finished run (with `digest`: of that config)."""
    run_dir = Path(run_dir)
    if digest is not None and not (
        (run_dir / "config.json").exists() and read_json(run_dir / "config.json").get("digest") == digest
    ):
        return False
    rows = read_results(run_dir)
    return bool(rows) and rows[-1]["kind"] == "final"


def tidy(run_dir: Path) -> pd.DataFrame:
    """One row per (epoch or selection rule, split, task, metric) of one run, with its identifying columns.

    `epoch` rows carry selection='epoch'; the final line yields selection='best_val' (the epoch chosen on
    validation) and selection='last10' (mean of the last 10 % of epochs). `primary` marks each task's primary metric
    (the one model selection and the paper's Δ use).
    """
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "config.json")
    ident = {
        "dataset": cfg["dataset"],
        "method": cfg["method"],
        "seed": cfg["seed"],
        "config_hash": cfg["digest"],
        "run_dir": str(run_dir),
    }
    lines = read_results(run_dir)
    primary = lines[-1]["primary"] if lines and lines[-1]["kind"] == "final" else {}
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
                        rows.append(
                            {
                                **ident,
                                "selection": selection,
                                "epoch": epoch,
                                "split": split,
                                "task": task,
                                "metric": metric,
                                "value": value,
                                "primary": primary.get(task, "acc") == metric,
                            }
                        )
    return pd.DataFrame(rows)


def collect(run_dirs) -> pd.DataFrame:
    frames = [tidy(d) for d in run_dirs if (Path(d) / "config.json").exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def final_line(run_dir: Path) -> dict:
    rows = read_results(run_dir)
    if not rows or rows[-1]["kind"] != "final":
        raise FileNotFoundError(f"{run_dir} holds no finished run")
    return rows[-1]


def final_graphs(run_dirs) -> list[tuple[dict, list]]:
    """(config, final routing graph A as nested lists) of every finished run that has a graph (MT-CRL)."""
    out = []
    for d in run_dirs:
        a = final_line(d).get("A")
        if a is not None:
            out.append((read_json(Path(d) / "config.json"), a))
    return out
