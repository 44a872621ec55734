"""Moved to mtcrl_lite.core.meters."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.core.meters")
