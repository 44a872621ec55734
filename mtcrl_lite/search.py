"""Moved to mtcrl_lite.grid.search."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.grid.search")
