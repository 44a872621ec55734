"""Moved to mtcrl_lite.analysis.relative."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.analysis.relative")
