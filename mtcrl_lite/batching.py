"""Moved to mtcrl_lite.data.batching."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.data.batching")
