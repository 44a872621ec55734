"""The one object every dataset builder returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tasks import Task


@dataclass
class Split:
    """Inputs and per-task labels of one split or one environment (numpy, converted to tensors per batch)."""
    x: np.ndarray
    y: dict[str, np.ndarray]

    def __post_init__(self):
        for t, yt in self.y.items():
            if len(yt) != len(self.x):
                raise ValueError(f"labels of task {t!r} have {len(yt)} rows, inputs have {len(self.x)}")

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: np.ndarray) -> "Split":
        return Split(self.x[idx], {t: yt[idx] for t, yt in self.y.items()})


@dataclass
class MTLData:
    """tasks + training environments + shifted validation and test splits.

    `info` is free-form provenance printed by notebooks (e.g. per-environment label correlation,
    `stand_in=True` for synthetic substitutes of unavailable datasets).
    """
    name: str
    tasks: list[Task]
    train_envs: dict[str, Split]
    val: Split
    test: Split
    info: dict = field(default_factory=dict)
    input_spec: object = None    # what models build their trunk from; None = input_shape (see models.trunk_for)

    def __post_init__(self):
        if len(self.train_envs) == 0:
            raise ValueError(f"{self.name}: no training environment")
        for e, s in {**self.train_envs, "val": self.val, "test": self.test}.items():
            if len(s) == 0:
                raise ValueError(f"{self.name}: environment/split {e!r} is empty; raise its size in the data config")
            missing = {t.name for t in self.tasks} - set(s.y)
            if missing:
                raise ValueError(f"{self.name}: split {e!r} lacks labels for tasks {sorted(missing)}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(next(iter(self.train_envs.values())).x.shape[1:])

    @property
    def model_input(self):
        """input_spec if the dataset gives one (e.g. models.TabularSpec), else input_shape."""
        return self.input_shape if self.input_spec is None else self.input_spec

    def train_all(self) -> Split:
        envs = list(self.train_envs.values())
        return Split(np.concatenate([s.x for s in envs]),
                     {t.name: np.concatenate([s.y[t.name] for s in envs]) for t in self.tasks})
