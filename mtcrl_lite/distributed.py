"""Moved to mtcrl_lite.models.distributed."""

from mtcrl_lite._moved import alias

alias(__name__, "mtcrl_lite.models.distributed")
