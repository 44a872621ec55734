"""Moved to mtcrl_lite.experiments.dense."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.experiments.dense")
