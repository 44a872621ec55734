"""Moved to mtcrl_lite.run.train."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.run.train")
