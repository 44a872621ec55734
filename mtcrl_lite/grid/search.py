"""Equal-budget random hyper-parameter search for every method (the DomainBed protocol), and the tuned defaults.

    python -m mtcrl_lite.grid.search --dataset multimnist --methods stl mtl mtcrl --draws 12 --out results/tuning/mm \
        [--scale default] [--set key=value ...] [--seed 0] [--write-tuning]

* **Ranges** live only in the field metadata of the configs (`hparams.hp`): each method's own hyper-parameters
  (methods.py) and the shared fields train.lr, train.weight_decay, model.width, model.module_norm, and model.n_modules
  (K, MT-CRL only). A field without a range is not searched; neither is a key given with --set (it is pinned), nor
  one that `PINNED` fixes for a dataset (with the reason).
* **Draws**: draw 0 is the registry defaults (with the dataset's default preset); draw d > 0 samples every searched
  field independently, log-uniform for a float range with both bounds > 0, a uniform integer for an int range, a
  uniform choice for choices. The generator of a field is seeded by (method, draw, field), so adding a method or a
  field never changes another's draws. A draw that cannot be built (MT-CRL with K < T or K not dividing the width)
  is redrawn, deterministically.
* **Runs**: every (method, draw) is one run (seed `--seed`, default 0) in OUT/METHOD/draw{d}-seed{s}-{digest}, run
  through sweep.run_configs: reused when finished, resumed when interrupted; a draw whose loss becomes non-finite is
  recorded (failed.json, status "diverged") and the search goes on.
* **Selection** (`select`): per method, the draw with the best mean validation score (each task's primary metric on
  the shifted validation split, at the validation-selected epoch; signed so that higher is better), never test.
  `oracle` picks on test instead: it is reported beside the result, labelled test-selected, never as the result.
* **Outputs**: OUT/search.csv always; with --write-tuning tuning/<dataset>.csv (one row per draw; rows of the methods
  searched replace theirs) and the selected values in tuning/tuned.json, which `config.make_config` reads (see its
  docstring for the order). `make tune` runs the two searches of the fidelity protocol.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mtcrl_lite.baselines.methods import METHODS, get_method
from mtcrl_lite.core.hparams import Range, ranges
from mtcrl_lite.core.tasks import HIGHER_IS_BETTER
from mtcrl_lite.grid.launch import slurm_parameters
from mtcrl_lite.grid.sweep import add_launcher_args, failure, run_configs
from mtcrl_lite.models.networks import n_modules
from mtcrl_lite.run.config import (
    SECTIONS,
    TUNED_PATH,
    _fields,
    _locate,
    get_value,
    make_config,
    parse_sets,
    read_tuned,
    typed,
)
from mtcrl_lite.run.rundir import atomic_write_text, final_line, is_finished, read_json
from mtcrl_lite.run.train import CLI_ERRORS, print_error

# Shared fields a dataset keeps fixed, with the reason (every other field with a range is searched).
PINNED: dict[str, dict[str, str]] = {
    "multisem": {"model.width": "the bottleneck width is notebook 02's experimental variable"},
    "scenes": {"model.width": "the dense presets fix K = 2T = 10 channel groups of a 40-channel map"},
    "taskonomy": {"model.width": "the dense presets fix K = 2T = 10 channel groups of a 40-channel map"},
}
DRAW_FILE = "draw.json"
MAX_ATTEMPTS = 1000


def _full_key(cfg, key: str) -> str:
    return ".".join(_locate(cfg, key))


def _base_for(dataset: str, method: str, base_overrides) -> dict:
    """The --set overrides that apply to `method`: an hp.* key of another registered method is dropped for methods
    without it (as presets do), any other unknown key stays an error."""
    hp_fields = _fields(make_config(dataset, method, tuned=False).hp)
    others = {n for m in METHODS for n in _fields(make_config(dataset, m, tuned=False).hp)}
    out = {}
    for k, v in dict(base_overrides or {}).items():
        name = k.split(".", 1)[1] if k.startswith("hp.") else None
        if name is not None and name not in hp_fields and name in others:
            continue
        out[k] = v
    return out


def search_space(dataset: str, method: str, scale: str = "default", base_overrides=None) -> list[Range]:
    """The fields searched for (dataset, method): every field with a range or choices, except those pinned by
    `PINNED[dataset]` or by a base override, those restricted to other model kinds (Range.kinds), and those the
    registry marks as without effect in the variant (MethodSpec.not_searched: mtcrl-nogirm's G-IRM weight)."""
    base = _base_for(dataset, method, base_overrides)
    cfg = make_config(dataset, method, 0, scale, base, tuned=False)
    spec = get_method(method)
    kind = spec.cls.model_kind
    fixed = set(PINNED.get(dataset, {})) | {_full_key(cfg, k) for k in base} | {f"hp.{n}" for n in spec.not_searched}
    out = []
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for r in ranges(obj, section, _fields(obj)):
            if r.key not in fixed and (r.kinds is None or kind in r.kinds):
                out.append(r)
    return out


def _rng(method: str, draw: int, key: str, attempt: int) -> np.random.Generator:
    h = hashlib.sha256(f"{method}|{draw}|{key}|{attempt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def _n_tasks(cfg) -> int:
    from mtcrl_lite.run.train import load_data  # local: building the data is needed only to check K >= T

    return len(load_data(cfg).tasks)


def _feasible(cfg, n_tasks_fn) -> bool:
    if get_method(cfg.method).cls.model_kind != "mtcrl":
        return True
    try:
        n_modules(cfg.model, n_tasks_fn())
    except ValueError:
        return False
    return True


def draw_overrides(
    dataset: str, method: str, draw: int, scale: str = "default", base_overrides=None, n_tasks: int | None = None
) -> dict[str, object]:
    """{config key: value} of every searched field for draw `draw` of `method` (draw 0 = the defaults)."""
    if draw < 0:
        raise ValueError(f"draw must be >= 0, got {draw}")
    base = _base_for(dataset, method, base_overrides)
    space = search_space(dataset, method, scale, base)
    cfg0 = make_config(dataset, method, 0, scale, base, tuned=False)
    if draw == 0:
        return {r.key: get_value(cfg0, r.key) for r in space}
    cache = {}

    def n_tasks_fn():
        if "n" not in cache:
            cache["n"] = n_tasks if n_tasks is not None else _n_tasks(cfg0)
        return cache["n"]

    for attempt in range(MAX_ATTEMPTS):
        values = {r.key: r.sample(_rng(method, draw, r.key, attempt)) for r in space}
        if _feasible(make_config(dataset, method, 0, scale, {**base, **values}, tuned=False), n_tasks_fn):
            return values
    raise ValueError(f"no buildable draw for {dataset}/{method} in {MAX_ATTEMPTS} attempts; check the ranges")


def run_dir(root, cfg, draw: int) -> Path:
    return Path(root) / cfg.method / f"draw{draw:02d}-seed{cfg.seed}-{cfg.digest()}"


def run_search(
    dataset: str,
    methods,
    n_draws: int,
    root,
    scale: str = "default",
    base_overrides=None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    jobs: int = 1,
    launcher: str = "local",
    slurm: dict | None = None,
) -> list[Path]:
    """Run draws 0 .. n_draws-1 of every method (the same number for each), one seed; returns the run directories
    (each holds draw.json: the draw and its searched values). Tuned defaults are never read here."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    plans = []
    for m in methods:
        base = _base_for(dataset, m, base_overrides)
        n_tasks = None
        if get_method(m).cls.model_kind == "mtcrl":
            n_tasks = _n_tasks(make_config(dataset, m, seed, scale, base, tuned=False))
        for d in range(n_draws):
            values = draw_overrides(dataset, m, d, scale, base, n_tasks)
            cfg = make_config(dataset, m, seed, scale, {**base, **values}, tuned=False)
            info = {
                "dataset": dataset,
                "method": m,
                "draw": d,
                "seed": seed,
                "scale": scale,
                "searched": values,
                "base_overrides": {k: _jsonable(v) for k, v in base.items()},
            }
            plans.append((cfg, run_dir(root, cfg, d), info))  # every config is validated before any run

    def write_info(d: Path, info: dict):
        if not (d / DRAW_FILE).exists():
            atomic_write_text(d / DRAW_FILE, json.dumps(_jsonable(info), indent=1, sort_keys=True))

    for _, d, info in plans:
        write_info(d, info)
    dirs = run_configs(
        [p[0] for p in plans],
        [p[1] for p in plans],
        force=force,
        progress=progress,
        record_failures=True,
        desc=f"{dataset} search",
        jobs=jobs,
        launcher=launcher,
        slurm=slurm,
    )
    for _, d, info in plans:  # --force removed the directories: write the draw again
        write_info(d, info)
    return dirs


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _score(metrics: dict, primary: dict, split: str) -> float:
    return float(np.mean([metrics[split][t][m] * (1 if HIGHER_IS_BETTER[m] else -1) for t, m in primary.items()]))


def search_table(run_dirs) -> pd.DataFrame:
    """One row per draw: dataset, method, draw, seed, scale, base_overrides (the pinned --set values, JSON),
    digest, git_revision, status ("ok", "diverged", "unfinished"), selected_epoch, `searched` (the searched keys,
    space-separated), every searched field and every hp.* field (columns named by config key), then
    val/{task}/{metric} and test/{task}/{metric} of each task's primary metric at the validation-selected epoch,
    val_score (the mean validation score that selection uses, signed so that higher is better) and test_score (the
    same on test: for the oracle only)."""
    rows = []
    for d in run_dirs:
        d = Path(d)
        cfg = read_json(d / "config.json") if (d / "config.json").exists() else None
        info = read_json(d / DRAW_FILE)
        row = {
            "dataset": info["dataset"],
            "method": info["method"],
            "draw": info["draw"],
            "seed": info["seed"],
            "scale": info["scale"],
            "base_overrides": json.dumps(info["base_overrides"], sort_keys=True),
            "digest": cfg["digest"] if cfg else None,
            "git_revision": cfg.get("git_revision") if cfg else None,
            "status": "diverged" if failure(d) else "ok" if is_finished(d) else "unfinished",
            "searched": " ".join(sorted(info["searched"])),
        }
        values = dict(info["searched"])
        if cfg:
            values.update({f"hp.{k}": v for k, v in (cfg.get("hp") or {}).items()})
            values.update({k: cfg[k.split(".", 1)[0]][k.split(".", 1)[1]] for k in info["searched"]})
        row.update({k: (", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in values.items()})
        if row["status"] == "ok":
            final = final_line(d)
            row["selected_epoch"] = final["selected_epoch"]
            primary = final["primary"]
            for split in ("val", "test"):
                for t, m in primary.items():
                    row[f"{split}/{t}/{m}"] = final["metrics"][split][t][m]
            row["val_score"] = _score(final["metrics"], primary, "val")
            row["test_score"] = _score(final["metrics"], primary, "test")
        elif row["status"] == "diverged":
            row["error"] = failure(d).get("error")
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for c in df.columns:  # integer fields stay integers where other methods leave the column empty
        vals = [r[c] for r in rows if r.get(c) is not None]
        if vals and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            df[c] = df[c].astype("Int64")
    ident = [
        "dataset",
        "method",
        "draw",
        "seed",
        "scale",
        "base_overrides",
        "digest",
        "git_revision",
        "status",
        "selected_epoch",
        "searched",
    ]
    params = sorted(
        (c for c in df.columns if c.split(".", 1)[0] in SECTIONS), key=lambda c: (SECTIONS.index(c.split(".", 1)[0]), c)
    )
    scores = [c for c in df.columns if c.startswith("val/")] + [c for c in df.columns if c.startswith("test/")]
    tail = [c for c in ("val_score", "test_score", "error") if c in df.columns]
    df = df[[c for c in ident if c in df.columns] + params + scores + tail]
    order = {m: i for i, m in enumerate(METHODS)}
    return df.sort_values(
        ["method", "draw"], key=lambda s: s.map(order) if s.name == "method" else s, kind="stable"
    ).reset_index(drop=True)


def _overrides(row) -> dict:
    cfg = make_config(row["dataset"], row["method"], tuned=False)
    keys = str(row["searched"]).split() if isinstance(row["searched"], str) else []
    return {k: typed(cfg, k, row[k]) for k in keys}


def tuning_table(dataset: str, tuning_dir=None) -> pd.DataFrame:
    """The committed search table tuning/<dataset>.csv (written by `make tune`)."""
    from mtcrl_lite.run import config

    path = Path(tuning_dir or config.TUNED_PATH.parent) / f"{dataset}.csv"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: no search has been run for {dataset!r}; run `make tune` "
            f"(or python -m mtcrl_lite.grid.search --dataset {dataset} ... --write-tuning)"
        )
    return pd.read_csv(path)


def restrict(table: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    """The draws whose values match `where` ({config key: value}, e.g. {"model.module_norm": "none"}: the draws
    of one architecture, for a baseline restricted to it); numbers compare as numbers (8 matches a column read as
    8.0). A key that is not a column of the table, or a `where` that no draw matches, is an error."""
    if not where:
        return table
    missing = [k for k in where if k not in table.columns]
    if missing:
        fields = sorted(c for c in table.columns if "." in c and not c.startswith(("val/", "test/")))
        raise KeyError(f"no column {missing} in the search table; its config fields: {fields}")
    keep = pd.Series(True, index=table.index)
    for k, v in where.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            keep &= pd.to_numeric(table[k], errors="coerce") == float(v)
        else:
            keep &= table[k].astype(str) == str(v)
    if not keep.any():
        raise ValueError(
            f"no draw of the search table ({', '.join(sorted(set(table.method)))}) has {where}; "
            f"values present: { {k: sorted(set(table[k].astype(str))) for k in where} }"
        )
    return table[keep]


def _best(table: pd.DataFrame, column: str, where: dict | None = None) -> dict[str, pd.Series]:
    if column not in table.columns:  # no draw finished
        return {}
    table = restrict(table, where)
    ok = table[(table.status == "ok") & table[column].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v))]
    out = {}
    for method, g in ok.groupby("method", sort=False):
        out[method] = g.sort_values([column, "draw"], ascending=[False, True]).iloc[0]
    return out


def select(table: pd.DataFrame, where: dict | None = None) -> dict[str, dict]:
    """{method: overrides of its draw with the best val_score} (ties: the lower draw), among the draws matching
    `where` (see `restrict`; None = all). Validation only."""
    return {m: _overrides(r) for m, r in _best(table, "val_score", where).items()}


def oracle(table: pd.DataFrame, where: dict | None = None) -> dict[str, dict]:
    """{method: overrides of its draw with the best test_score}: the test-selected (oracle) configuration, to be
    reported beside the validation-selected result and labelled as such, never as the result."""
    return {m: _overrides(r) for m, r in _best(table, "test_score", where).items()}


def selection_summary(table: pd.DataFrame, where: dict | None = None) -> pd.DataFrame:
    """Per method: draws run and finished, the validation-selected draw with its val/test scores, and the
    test-selected (oracle) draw with its test score, in columns named oracle_* (draws matching `where` only)."""
    table = restrict(table, where)
    sel, orc = _best(table, "val_score"), _best(table, "test_score")
    rows = []
    for m, g in table.groupby("method", sort=False):
        r = {"method": m, "draws": len(g), "finished": int((g.status == "ok").sum())}
        if m in sel:
            r.update(selected_draw=int(sel[m].draw), val_score=sel[m].val_score, test_score=sel[m].test_score)
        if m in orc:
            r.update(oracle_draw=int(orc[m].draw), oracle_test_score=orc[m].test_score)
        rows.append(r)
    return pd.DataFrame(rows).set_index("method")


def _revision(g: pd.DataFrame) -> str:
    revs = sorted({str(r) for r in g.git_revision.dropna()})
    return " ".join(revs) if revs else "unknown"


def write_tuning(table: pd.DataFrame, tuning_dir, command: str) -> tuple[Path, Path]:
    """tuning/<dataset>.csv (rows of the searched methods replace theirs) and the validation-selected values in
    tuning/tuned.json, with provenance per (dataset, method)."""
    tuning_dir = Path(tuning_dir)
    (dataset,) = table.dataset.unique()
    csv = tuning_dir / f"{dataset}.csv"
    searched = set(table.method)
    if csv.exists():
        old = pd.read_csv(csv)
        table = pd.concat([old[~old.method.isin(searched)], table], ignore_index=True)
        order = {m: i for i, m in enumerate(METHODS)}
        table = table.sort_values(
            ["method", "draw"], key=lambda s: s.map(order) if s.name == "method" else s, kind="stable"
        )
    atomic_write_text(csv, table.to_csv(index=False, float_format="%.6g"))
    path = tuning_dir / "tuned.json"
    tuned = read_tuned(path)
    entry = tuned.setdefault(dataset, {})
    best = _best(table[table.method.isin(searched)], "val_score")
    for method, row in best.items():
        g = table[table.method == method]
        entry[method] = {
            "values": _jsonable(_overrides(row)),
            "draw": int(row.draw),
            "val_score": float(row.val_score),
            "n_draws": int(len(g)),
            "seed": int(row.seed),
            "scale": row.scale,
            "base_overrides": json.loads(row.base_overrides),
            "selection": "best mean validation primary metric (shifted validation split)",
            "git_revision": _revision(g),
            "table": f"tuning/{dataset}.csv",
            "command": command,
            "regenerate": "make tune",
        }
    atomic_write_text(path, json.dumps(tuned, indent=1, sort_keys=True) + "\n")
    return csv, path


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.grid.search", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--methods", nargs="+", required=True, help="registry names, or all: every registered method")
    p.add_argument("--draws", type=int, required=True, help="draws per method (draw 0 = the defaults)")
    p.add_argument("--out", required=True, help="root of the search's run directories")
    p.add_argument("--scale", default="default", choices=["smoke", "default", "full"])
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pin a field for every draw (a searched key given here is not searched)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rerun every draw")
    p.add_argument(
        "--write-tuning",
        action="store_true",
        help="write tuning/<dataset>.csv and the selected values into tuning/tuned.json",
    )
    p.add_argument("--tuning-dir", default=str(TUNED_PATH.parent))
    p.add_argument("--quiet", action="store_true")
    add_launcher_args(p, dry_run=False)
    args = p.parse_args(argv)
    if args.methods == ["all"]:
        args.methods = list(METHODS)
    if args.write_tuning and args.scale != "default":
        print(
            "error: --write-tuning needs --scale default (tuned values are the defaults of the default scale)",
            file=sys.stderr,
        )
        return 2
    try:
        dirs = run_search(
            args.dataset,
            args.methods,
            args.draws,
            args.out,
            args.scale,
            parse_sets(args.sets),
            args.seed,
            args.force,
            progress=not args.quiet,
            jobs=args.jobs,
            launcher=args.launcher,
            slurm=slurm_parameters(args.slurm),
        )
    except CLI_ERRORS as e:
        return print_error(e)
    table = search_table(dirs)
    atomic_write_text(Path(args.out) / "search.csv", table.to_csv(index=False, float_format="%.6g"))
    if args.write_tuning:
        csv, path = write_tuning(table, args.tuning_dir, "python -m mtcrl_lite.grid.search " + shlex.join(argv))
        print(f"wrote {csv} and {path}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(selection_summary(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
