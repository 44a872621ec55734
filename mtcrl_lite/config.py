"""Moved to mtcrl_lite.run.config."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.run.config")
