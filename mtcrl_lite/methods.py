"""Moved to mtcrl_lite.baselines.methods."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.baselines.methods")
