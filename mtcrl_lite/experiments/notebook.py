"""Notebook parameters: the one place that validates what papermill (or a user editing the cell) passes in.

`papermill -p SEEDS "[0, 1]"` hands the notebook the *string* "[0, 1]"; `-p SMOKE False` may arrive as a bool or
as the string "False". `parameters(SEEDS=SEEDS, ...)` turns every value into the type its schema names, or stops
with an error that names the parameter, the value and an example that works. Every notebook calls it in the first
code cell after its `parameters` cell, with every name that cell assigns (tests/test_notebook_params.py checks it).
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from types import SimpleNamespace

from mtcrl_lite.paths import REPO_ROOT, results_root

# The parameters many notebooks share: name -> (kind, allowed values or None). A notebook declares its own (or a
# shared name with another kind) in its validation cell: parameters(..., kinds={"MU": "float", "NS": ("int_list", 1),
# "TARGET": ("str", None, ("rating", "like"))}), i.e. a kind, or (kind, smallest value[, allowed values]).
# A kind is a base kind, optionally with a suffix:
#   "bool", "int", "float", "prob" (a float in [0, 1]), "str", "path" (a str, or None), "dict" (config overrides,
#   {"dotted.key": value}), and lists of them: "int_list", "float_list", "prob_list", "str_list" (not empty);
#   "..._or_none": None, "None" or "" give None; "..._list_or_empty": the empty list is allowed.
SCHEMA: dict[str, tuple[str, tuple | None]] = {
    "SMOKE": ("bool", None),
    "SCALE": ("str", ("default", "full")),
    "SEEDS": ("int_list", None),
    "EPOCHS": ("int_or_none", None),
    "DEVICE": ("str", ("auto", "cpu", "cuda")),
    "DATA_ROOT": ("path", None),
    "RESULTS_DIR": ("path", None),
    "METHODS": ("str_list", None),
    "TASKS": ("str_list_or_none", None),
    "FORCE": ("bool", None),
    "JOBS": ("int", None),
}
# Smallest valid value of numeric parameters (every entry of a list): EPOCHS 0 is an error, not "the preset".
MINIMUM: dict[str, int] = {"EPOCHS": 1, "SEEDS": 0, "JOBS": 1}
EXAMPLES = {
    "bool": "True",
    "int": "3",
    "float": "1.5",
    "prob": "0.9",
    "str": "default",
    "path": "/data/taskonomy",
    "dict": "\"{'train.epochs': 5}\"",
    "int_list": '"[1, 2, 3]"',
    "float_list": '"[0.5, 2.0]"',
    "prob_list": '"[0.5, 0.9]"',
    "str_list": '"[mtl, mtcrl]"',
    "int_or_none": "20",
    "str_list_or_none": '"[segment_semantic, normal]"',
    "float_list_or_empty": '"[10.0, 30.0]"',
    "str_list_or_empty": '"[mtl, mtcrl]"',
}
_BASES = ("bool", "int", "float", "prob", "str", "path", "dict", "int_list", "float_list", "prob_list", "str_list")
_NONE = ("", "None")


class ParameterError(ValueError):
    pass


def split_kind(kind: str) -> tuple[str, bool, bool]:
    """(base kind, None allowed, empty list allowed) of a SCHEMA kind."""
    base, optional, empty_ok = kind, kind == "path", False
    if base.endswith("_or_none"):
        base, optional = base[: -len("_or_none")], True
    if base.endswith("_or_empty"):
        base, empty_ok = base[: -len("_or_empty")], True
    if base not in _BASES or (empty_ok and not base.endswith("_list")):
        raise ValueError(f"unknown parameter kind {kind!r}")
    return base, optional, empty_ok


def _fail(name, value, kind, why, allowed=None):
    example = allowed[0] if kind == "str" and allowed else EXAMPLES[kind]
    return ParameterError(f"notebook parameter {name} = {value!r}: {why}; pass e.g. -p {name} {example}")


def _parse_list(text: str) -> list:
    text = text.strip()
    try:
        value = ast.literal_eval(text)
        return list(value) if isinstance(value, (list, tuple)) else [value]
    except (ValueError, SyntaxError):
        return [s.strip().strip("'\"") for s in text.strip("[]() ").split(",") if s.strip()]


def _scalar(value, base: str):
    """One value of a base kind (not a list); ValueError says what was expected."""
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise ValueError("expected True or False")
    if base in ("str", "path"):
        if isinstance(value, (list, tuple, dict, set)) or not str(value).strip():
            raise ValueError("expected a non-empty string")
        return str(value).strip() if base == "str" else str(value)
    if base == "dict":
        parsed = value
        if isinstance(value, str):
            try:
                parsed = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                parsed = None
        if not isinstance(parsed, dict) or not all(isinstance(k, str) for k in parsed):
            raise ValueError("expected a dict of config overrides with string keys")
        return dict(parsed)
    what = "expected an integer" if base == "int" else "expected a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(what)
    if base == "int" and isinstance(value, int):
        return value
    if base == "int" and isinstance(value, str):
        try:
            return int(value.strip())  # exact, also for "200_000" and big integers
        except ValueError:
            pass
    try:
        number = float(value)
    except ValueError:
        raise ValueError(what) from None
    if base == "int":
        if not number.is_integer():  # False for nan and inf
            raise ValueError(what)
        return int(number)
    if not math.isfinite(number):
        raise ValueError("expected a number")
    if base == "prob" and not 0.0 <= number <= 1.0:
        raise ValueError("expected a number in [0, 1]")
    return number


def _convert(name: str, value, kind: str, allowed=None):
    base, optional, empty_ok = split_kind(kind)
    if optional and (value is None or (isinstance(value, str) and value.strip() in _NONE)):
        return None
    if value is None:
        raise _fail(name, value, kind, "None is not allowed here", allowed)
    if not base.endswith("_list"):
        try:
            return _scalar(value, base)
        except ValueError as e:
            raise _fail(name, value, kind, str(e), allowed) from None
    if isinstance(value, str):
        items = _parse_list(value)
    else:
        items = list(value) if isinstance(value, (list, tuple, range)) else [value]
    if not items and not empty_ok:
        raise _fail(name, value, kind, "the list is empty")
    out = []
    for v in items:
        try:
            out.append(_scalar(v, base[: -len("_list")]))
        except ValueError as e:
            raise _fail(name, value, kind, f"item {v!r}: {e}") from None
    return out


def parameters(choices: dict[str, tuple] | None = None, *, kinds: dict | None = None, **values) -> SimpleNamespace:
    """Validated notebook parameters. `choices` adds or narrows allowed values, e.g. {"METHODS": METHODS};
    `kinds` declares the notebook's own parameters (or another kind for a shared name): {name: kind} or
    {name: (kind, smallest value or None[, allowed values])}."""
    schema, minimum = dict(SCHEMA), dict(MINIMUM)
    for name, spec in (kinds or {}).items():
        kind, low, allowed = (spec, None, None) if isinstance(spec, str) else (tuple(spec) + (None, None))[:3]
        split_kind(kind)
        schema[name] = (kind, tuple(allowed) if allowed is not None else None)
        minimum.pop(name, None)
        if low is not None:
            minimum[name] = low
    unknown = sorted(set(values) - set(schema)) or sorted(set(choices or {}) - set(schema))
    if unknown:
        raise ParameterError(
            f"unknown notebook parameter {unknown[0]}; known: {sorted(schema)} (declare it with kinds={{...}})"
        )
    allowed = {name: spec[1] for name, spec in schema.items()}
    allowed.update(choices or {})
    out = {}
    for name, value in values.items():
        kind, ok = schema[name][0], allowed.get(name)
        v = _convert(name, value, kind, tuple(ok) if ok is not None else None)
        if ok is not None and v is not None:
            bad = [x for x in (v if isinstance(v, list) else [v]) if x not in ok]
            if bad:
                what = bad if isinstance(v, list) else repr(v)
                raise _fail(name, value, kind, f"{what} not among the valid values {list(ok)}", tuple(ok))
        low = [
            x for x in (v if isinstance(v, list) else [v]) if x is not None and name in minimum and x < minimum[name]
        ]
        if low:
            raise _fail(name, value, kind, f"{low} below the smallest valid value {minimum[name]}", None)
        out[name] = v
    return SimpleNamespace(**out)


def jobs(P) -> int:
    """Runs at a time: P.JOBS (1 without it), but 1 in smoke mode, where a run is so short that starting a process
    for it (submitit) would cost more than the run. The numbers do not depend on it."""
    return 1 if getattr(P, "SMOKE", False) else getattr(P, "JOBS", 1)


def results_dir(P, folder: str) -> Path:
    """Where a notebook writes: RESULTS_DIR when given, else results/<folder> (results/smoke/<folder> in smoke mode;
    results/ is $MTCRL_RESULTS when set). `folder` "" gives the root the notebooks' folders share."""
    if P.RESULTS_DIR:
        return results_root(P.RESULTS_DIR)
    return results_root() / ("smoke" if P.SMOKE else "") / folder


def run_overrides(P, data_root: bool = True) -> dict:
    """The config overrides a notebook's runs take from its parameters: train.device from DEVICE, train.epochs from
    EPOCHS when set, data.root from DATA_ROOT when set (unless `data_root` is False: the dense benchmarks resolve
    their own, `dense_benchmark.choose_data`)."""
    return {
        "train.device": P.DEVICE,
        **({"train.epochs": P.EPOCHS} if P.EPOCHS else {}),
        **({"data.root": str(P.DATA_ROOT)} if data_root and P.DATA_ROOT else {}),
    }


TIMING = ("duration", "start_time", "end_time")


def strip_timing(nb: dict, root: Path = REPO_ROOT) -> dict:
    """An executed notebook without what changes from one execution or machine to the next (papermill's and
    Jupyter's timestamps and durations, the repository's absolute path, the kernel's temporary cell files, tqdm's
    widget warning), so that a committed executed notebook changes only when its outputs do."""
    for meta in [nb.get("metadata", {})] + [c.get("metadata", {}) for c in nb.get("cells", [])]:
        meta.pop("execution", None)
        for key in TIMING:
            meta.get("papermill", {}).pop(key, None)
    for cell in nb.get("cells", []):
        outputs = [o for o in cell.get("outputs", []) if "TqdmWarning" not in "".join(o.get("text", ""))]
        for o in outputs:
            if "text" in o:
                text = re.sub(r"/tmp/ipykernel_\d+/\d+\.py", "<cell>", "".join(o["text"]).replace(str(root), "."))
                o["text"] = text if isinstance(o["text"], str) else text.splitlines(keepends=True)
        if "outputs" in cell:
            cell["outputs"] = outputs
    return nb


if __name__ == "__main__":  # python -m mtcrl_lite.experiments.notebook strip-timing FILE.ipynb ...
    import json
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "strip-timing":
        sys.exit("usage: python -m mtcrl_lite.experiments.notebook strip-timing FILE.ipynb [...]")
    for name in sys.argv[2:]:
        path = Path(name)
        nb = strip_timing(json.loads(path.read_text()))
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
