"""Moved to mtcrl_lite.run.evaluate."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.run.evaluate")
