"""Moved to mtcrl_lite.analysis.plots."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.analysis.plots")
