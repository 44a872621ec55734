"""Notebook parameters: the one place that validates what papermill (or a user editing the cell) passes in.

`papermill -p SEEDS "[0, 1]"` hands the notebook the *string* "[0, 1]"; `-p SMOKE False` may arrive as a bool or
as the string "False". `parameters(SEEDS=SEEDS, ...)` turns every value into the type its schema names, or stops
with an error that names the parameter, the value and an example that works.
"""
from __future__ import annotations

import ast
from types import SimpleNamespace

# name -> (type, allowed values or None). Types: "bool", "int", "str", "path" (str or None), "int_list",
# "str_list", "str_list_or_none", "int_or_none".
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
}
EXAMPLES = {"bool": "True", "int": "3", "str": "default", "path": "/data/taskonomy", "int_list": '"[0, 1, 2]"',
            "str_list": '"[mtl, mtcrl]"', "str_list_or_none": '"[segment_semantic, normal]"',
            "int_or_none": "20"}


class ParameterError(ValueError):
    pass


def _fail(name, value, kind, why):
    return ParameterError(f"notebook parameter {name} = {value!r}: {why}; pass e.g. -p {name} {EXAMPLES[kind]}")


def _parse_list(text: str) -> list:
    text = text.strip()
    try:
        value = ast.literal_eval(text)
        return list(value) if isinstance(value, (list, tuple)) else [value]
    except (ValueError, SyntaxError):
        return [s.strip().strip("'\"") for s in text.strip("[]() ").split(",") if s.strip()]


def _convert(name: str, value, kind: str):
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise _fail(name, value, kind, "expected True or False")
    if kind in ("path", "int_or_none", "str_list_or_none") and (value is None or
                                                                  (isinstance(value, str) and value in ("", "None"))):
        return None
    if kind == "path":
        return str(value)
    if kind in ("int", "int_or_none"):
        try:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        except (TypeError, ValueError):
            raise _fail(name, value, kind, "expected an integer") from None
    if kind == "str":
        return str(value).strip()
    items = _parse_list(value) if isinstance(value, str) else list(value)
    if not items:
        raise _fail(name, value, kind, "the list is empty")
    if kind == "int_list":
        out = []
        for v in items:
            try:
                out.append(_convert(name, v, "int"))
            except ParameterError:
                raise _fail(name, value, kind, f"{v!r} is not an integer") from None
        return out
    return [str(v).strip() for v in items]


def parameters(choices: dict[str, tuple] | None = None, **values) -> SimpleNamespace:
    """Validated notebook parameters. `choices` adds or narrows allowed values, e.g. {"METHODS": METHODS}."""
    allowed = {name: spec[1] for name, spec in SCHEMA.items()}
    allowed.update(choices or {})
    out = {}
    for name, value in values.items():
        if name not in SCHEMA:
            raise ParameterError(f"unknown notebook parameter {name}; known: {sorted(SCHEMA)}")
        kind = SCHEMA[name][0]
        v = _convert(name, value, kind)
        ok = allowed.get(name)
        if ok is not None and v is not None:
            bad = [x for x in (v if isinstance(v, list) else [v]) if x not in ok]
            if bad:
                raise _fail(name, value, kind, f"{bad} not among the valid values {list(ok)}")
        out[name] = v
    return SimpleNamespace(**out)
