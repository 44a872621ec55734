"""Moved to mtcrl_lite.baselines.aggregators."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.baselines.aggregators")
