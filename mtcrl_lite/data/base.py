"""The objects every dataset builder returns: splits (torch Datasets of batches) and MTLData.

A `Split` is one split or one training environment. It is a `torch.utils.data.Dataset` whose items are whole
batches: `split[idx]` with an integer array (or list) of sample indices returns

    x: float32 tensor (B, *input_shape),   y: {task: tensor (B, *label_shape)}

and `split[i]` with a single int returns one sample without the batch dimension. Two kinds exist:

* `ArraySplit(x, y)`: numpy arrays in memory (Multi-MNIST, Multi-SEM, MovieLens, the scene stand-in);
* `FileSplit(items, read)`: one `read(item) -> (x, {task: y})` call per sample, e.g. PNG files on disk
  (Taskonomy); `read` must be picklable (a top-level function or a functools.partial of one) so that
  DataLoader workers can call it.

uint8 inputs are scaled to [0, 1]. Labels keep their dtype (int64 classes, float32 targets). Missing labels and
invalid pixels are marked in the label itself: a negative class, or NaN for a float target (see tasks.Task).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from mtcrl_lite.core.tasks import Task


def _as_tensor(a: np.ndarray, is_input: bool) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    if is_input:
        return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
    return t


class Split(Dataset):
    """Base class: a split or environment whose items are batches (see the module docstring)."""

    task_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, idx: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """numpy (x, {task: y}) of the samples `idx` (a 1-D integer array); subclasses implement this."""
        raise NotImplementedError

    def __getitem__(self, idx):
        single = np.ndim(idx) == 0
        ix = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        if len(ix) and (ix.min() < -len(self) or ix.max() >= len(self)):
            raise IndexError(f"index out of range for a split of {len(self)} samples")
        x, y = self.load(ix % len(self) if len(self) else ix)
        x, y = _as_tensor(x, True), {t: _as_tensor(v, False) for t, v in y.items()}
        if single:
            return x[0], {t: v[0] for t, v in y.items()}
        return x, y

    def take(self, idx) -> Split:
        """The sub-split of samples `idx` (a view for FileSplit, a copy for ArraySplit)."""
        return Subset(self, np.asarray(idx, dtype=np.int64))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self[[0]][0].shape[1:])


class ArraySplit(Split):
    """Inputs and per-task labels held as numpy arrays (converted to tensors per batch)."""

    def __init__(self, x: np.ndarray, y: dict[str, np.ndarray]):
        for t, yt in y.items():
            if len(yt) != len(x):
                raise ValueError(f"labels of task {t!r} have {len(yt)} rows, inputs have {len(x)}")
        self.x, self.y = x, y
        self.task_names = tuple(y)

    def __len__(self) -> int:
        return len(self.x)

    def load(self, idx):
        return self.x[idx], {t: yt[idx] for t, yt in self.y.items()}

    def take(self, idx) -> ArraySplit:
        return ArraySplit(self.x[idx], {t: yt[idx] for t, yt in self.y.items()})

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


class FileSplit(Split):
    """Samples read one at a time by `read(item) -> (x, {task: y})` (numpy), stacked into batches."""

    def __init__(self, items: Sequence, read: Callable, task_names: Sequence[str]):
        self.items, self.read, self.task_names = list(items), read, tuple(task_names)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, idx):
        samples = [self.read(self.items[i]) for i in idx]
        if not samples:
            raise ValueError("empty batch")
        xs, ys = zip(*samples)
        return np.stack(xs), {t: np.stack([y[t] for y in ys]) for t in self.task_names}


class Subset(Split):
    """Samples `idx` of another split (no copy)."""

    def __init__(self, base: Split, idx: np.ndarray):
        self.base, self.idx, self.task_names = base, idx, base.task_names

    def __len__(self) -> int:
        return len(self.idx)

    def load(self, idx):
        return self.base.load(self.idx[idx])


class ConcatSplit(Split):
    """Several splits one after another (the pooled training environments)."""

    def __init__(self, parts: Sequence[Split]):
        self.parts = list(parts)
        self.task_names = self.parts[0].task_names
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def load(self, idx):
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        order = np.argsort(which, kind="stable")
        chunks = [self.parts[p].load(idx[which == p] - self.offsets[p]) for p in np.unique(which)]
        x = np.concatenate([c[0] for c in chunks])
        y = {t: np.concatenate([c[1][t] for c in chunks]) for t in self.task_names}
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return x[back], {t: v[back] for t, v in y.items()}


@dataclass(frozen=True)
class TabularSpec:
    """Vector inputs (D,) some of whose columns hold integer ids stored as floats (e.g. a user id): a dataset
    passes this as `MTLData.input_spec` instead of a plain shape to get `TabularTrunk`."""

    n_features: int  # D
    categorical: tuple[tuple[int, int], ...]  # (column, cardinality) per id column
    emb_dim: int = 16  # embedding size of every id column


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
    input_spec: object = None  # what models build their trunk from; None = input_shape (see models.trunk_for)

    def __post_init__(self):
        if len(self.train_envs) == 0:
            raise ValueError(f"{self.name}: no training environment")
        for e, s in {**self.train_envs, "val": self.val, "test": self.test}.items():
            if len(s) == 0:
                raise ValueError(f"{self.name}: environment/split {e!r} is empty; raise its size in the data config")
            missing = {t.name for t in self.tasks} - set(s.task_names)
            if missing:
                raise ValueError(f"{self.name}: split {e!r} lacks labels for tasks {sorted(missing)}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return next(iter(self.train_envs.values())).input_shape

    @property
    def model_input(self):
        """input_spec if the dataset gives one (e.g. TabularSpec), else input_shape."""
        return self.input_shape if self.input_spec is None else self.input_spec

    def train_all(self) -> Split:
        """The training environments pooled, in order (an ArraySplit when they all are)."""
        envs = list(self.train_envs.values())
        if all(isinstance(s, ArraySplit) for s in envs):
            return ArraySplit(
                np.concatenate([s.x for s in envs]),
                {t.name: np.concatenate([s.y[t.name] for s in envs]) for t in self.tasks},
            )
        return ConcatSplit(envs)
