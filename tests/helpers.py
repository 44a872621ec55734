"""Shared by several test files: a run killed in the middle, as a killed process would leave it."""

from __future__ import annotations

from contextlib import contextmanager

from mtcrl_lite.run import train as T


@contextmanager
def interrupted_at(kill_step: int):
    """Inside the block, every method that train.build_method builds raises KeyboardInterrupt at global step
    `kill_step` (on every rank of a torchrun run alike)."""
    real = T.build_method

    def build_then_die(*args):
        m = real(*args)
        update = m.update

        def update_or_die(batches, step):
            if step == kill_step:
                raise KeyboardInterrupt
            return update(batches, step)

        m.update = update_or_die
        return m

    T.build_method = build_then_die
    try:
        yield
    finally:
        T.build_method = real
