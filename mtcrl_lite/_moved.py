"""Aliases that keep the flat module paths of 0.1 importable for one release (`mtcrl_lite.train` is now
`mtcrl_lite.run.train`): importing one warns with a DeprecationWarning and returns the new module itself, so that
attributes, monkeypatching and `python -m` behave as before."""

from __future__ import annotations

import importlib
import runpy
import sys
import warnings


def alias(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new}; import it from there (the old path goes in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    if old == "__main__":  # python -m mtcrl_lite.<old name>
        runpy.run_module(new, run_name="__main__", alter_sys=True)
        return
    sys.modules[old] = importlib.import_module(new)
