"""The run record: one row per (run, task) behind every number the repository publishes, in a committed CSV
(`results/record/runs.csv`) that tables, the report and the notebooks read where the run folders are absent.

A row holds where the run lives (`run`: its folder under the results root; `study`: the first folder, the notebook's;
`variant`: the folders between the study and the method, e.g. "plain"), what it is (dataset, style, method, seed,
data_seed, epochs, digest, git_revision, provenance: "tuned" from tuning/tuned.json for this dataset, "borrowed" from
the dataset it borrows from, or "defaults"), what model selection chose (selected_epoch, on the shifted validation
split) and the task's primary metric there on validation and test, and the mechanism where measured: the task's row
of the routing graph A at the end (A_mean, A_min, A_max) and, where the run was analysed (notebooks 01 and 02 cache
`spurious_logit_n<N>_s0.csv` in the run folder), ρ_spur and the counterfactual flip rate of the task on the shifted
validation split (rho_spur, flip_rate; the largest N analysed). Build it with `make record` (python -m
mtcrl_lite.analysis.record build RESULTS_ROOT); `to_tidy` turns it back into the tidy table of `run.rundir.collect`
(selection best_val, primary metrics), so that the functions of analysis.tables work on either.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mtcrl_lite.core.tasks import HIGHER_IS_BETTER
from mtcrl_lite.paths import REPO_ROOT, results_root
from mtcrl_lite.run.config import BORROWS, read_tuned
from mtcrl_lite.run.rundir import CorruptFileError, final_line, is_finished, read_json

RECORD = REPO_ROOT / "results" / "record" / "runs.csv"
COLUMNS = [
    "study", "variant", "dataset", "style", "method", "seed", "data_seed", "epochs", "digest", "git_revision",
    "provenance", "selected_epoch", "task", "metric", "higher_is_better", "val", "test", "A_mean", "A_min", "A_max",
    "rho_spur", "flip_rate", "run",
]  # fmt: skip


def _provenance(cfg: dict, tuned_table: dict) -> str:
    if not cfg.get("tuned"):
        return "defaults"
    own = (tuned_table.get(cfg["dataset"]) or {}).get(cfg["method"])
    return "tuned" if own or cfg["dataset"] not in BORROWS else "borrowed"


def reliance(run_dir: Path) -> pd.DataFrame:
    """ρ_spur and the flip rate per task on the shifted split, from the run's cached analysis with the largest sample
    (experiments.reliance_study.analyze_runs writes it); empty when the run was not analysed."""
    cached = sorted(Path(run_dir).glob("spurious_logit_n*_s0.csv"), key=lambda f: int(f.stem.split("_n")[1][:-3]))
    if not cached:
        return pd.DataFrame(columns=["rho_spur", "flip_rate"])
    table = pd.read_csv(cached[-1])
    return table[table["set"] == "shifted"].set_index("task")[["rho_spur", "flip_rate"]]


def run_rows(run_dir: Path, root: Path, tuned_table: dict | None = None) -> list[dict]:
    """The record's rows of one finished run folder (its final line and config.json)."""
    run_dir, root = Path(run_dir), Path(root)
    cfg = read_json(run_dir / "config.json")
    final = final_line(run_dir)
    rel = run_dir.relative_to(root).parts
    study, method_at = rel[0], rel.index(cfg["method"]) if cfg["method"] in rel else len(rel) - 1
    variant = "/".join(rel[1:method_at])
    tasks = list(final["primary"])
    graph = np.asarray(final["A"], float) if final.get("A") is not None else None
    measured = reliance(run_dir)
    rows = []
    for i, task in enumerate(tasks):
        metric = final["primary"][task]
        a = graph[i] if graph is not None else np.array([np.nan])
        rows.append(
            {
                "study": study,
                "variant": variant,
                "dataset": cfg["dataset"],
                "style": cfg["data"].get("style", ""),
                "method": cfg["method"],
                "seed": cfg["seed"],
                "data_seed": cfg["data"].get("data_seed", cfg["data"].get("seed", "")),
                "epochs": cfg["train"]["epochs"],
                "digest": cfg["digest"],
                "git_revision": cfg.get("git_revision", ""),
                "provenance": _provenance(cfg, tuned_table or {}),
                "selected_epoch": final["selected_epoch"],
                "task": task,
                "metric": metric,
                "higher_is_better": HIGHER_IS_BETTER[metric],
                "val": final["metrics"]["val"][task][metric],
                "test": final["metrics"]["test"][task][metric],
                "A_mean": float(a.mean()),
                "A_min": float(a.min()),
                "A_max": float(a.max()),
                "rho_spur": measured.rho_spur.get(task, np.nan),
                "flip_rate": measured.flip_rate.get(task, np.nan),
                "run": "/".join(rel),
            }
        )
    return rows


def build(root: Path | None = None, studies: list[str] | None = None) -> pd.DataFrame:
    """The record of every finished run under `root` (default: the results root), smoke runs and the record itself
    excluded; `studies` keeps only those top-level folders."""
    root = Path(root or results_root())
    tuned_table = read_tuned()
    rows = []
    for cfg in sorted(root.glob("**/config.json")):
        d = cfg.parent
        top = d.relative_to(root).parts[0]
        if top in ("smoke", "record") or (studies and top not in studies) or not is_finished(d):
            continue
        rows += run_rows(d, root, tuned_table)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(
        ["study", "variant", "dataset", "method", "seed", "task"], kind="stable", ignore_index=True
    )


def read(path: Path | None = None) -> pd.DataFrame:
    """The committed record (or another one), with a clear error when it is missing or not a record."""
    path = Path(path or RECORD)
    if not path.exists():
        raise FileNotFoundError(f"no run record at {path}; build it with `make record` from finished run folders")
    text = {
        "study": str,
        "variant": str,
        "dataset": str,
        "style": str,
        "method": str,
        "digest": str,
        "git_revision": str,
        "provenance": str,
        "task": str,
        "metric": str,
        "run": str,
    }
    table = pd.read_csv(path, dtype=text, keep_default_na=False, na_values={c: [""] for c in COLUMNS if c not in text})
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise CorruptFileError(
            f"{path}: not a run record, columns {missing} are missing; rebuild it with `make record`"
        )
    return table


def to_tidy(record: pd.DataFrame) -> pd.DataFrame:
    """The record as `run.rundir.collect` would give its runs: selection best_val, split val and test, primary."""
    base = record.rename(columns={"digest": "config_hash", "selected_epoch": "epoch", "run": "run_dir"})
    keep = ["dataset", "method", "seed", "config_hash", "run_dir", "epoch", "task", "metric"]
    parts = [base[keep].assign(selection="best_val", split=s, value=base[s], primary=True) for s in ("val", "test")]
    return pd.concat(parts, ignore_index=True)


def column(record: pd.DataFrame, study: str, variant: str = "", dataset: str | None = None) -> pd.DataFrame:
    """One table column's runs in tidy form: a study's runs of one variant (and dataset, where a study has several)."""
    sel = (record.study == study) & (record.variant.fillna("") == variant)
    if dataset is not None:
        sel &= record.dataset == dataset
    return to_tidy(record[sel])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.analysis.record", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the record of the finished runs under ROOT")
    b.add_argument("root", nargs="?", default=None, help="results root (default: $MTCRL_RESULTS or results/)")
    b.add_argument("--studies", nargs="*", default=None, help="only these top-level folders (e.g. 06_multimnist)")
    b.add_argument("--out", default=str(RECORD))
    args = p.parse_args(argv)
    try:
        table = build(args.root, args.studies)
    except (CorruptFileError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if table.empty:
        print(f"error: no finished run under {args.root or results_root()}; run a notebook first", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)  # full precision: make verify compares bit for bit
    runs = table.run.nunique()
    print(f"{out}: {runs} runs, {len(table)} rows, studies {sorted(table.study.unique())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
