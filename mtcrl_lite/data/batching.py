"""Batching: which samples each training step holds (the epoch plan, a torch Sampler) and the DataLoaders that
read them, for in-memory and on-disk splits alike.

Every training step holds `batch_size // E` samples of every one of the E training environments. A step is one
item of `EnvBatches` (a Dataset over the environments) indexed by the plan's `{env: indices}`; a DataLoader with
`batch_size=None` reads steps through workers (`train.num_workers`) and pins memory on a GPU. The plan depends on
(seed, epoch) only, so a resumed run replays the same batches whatever the number of workers.

`training_environments` is the one place where the training environments are chosen (`train.envs`): the dataset's
own, or the control "random", the same pooled samples dealt at random into environments of the same sizes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from mtcrl_lite.core.batches import concat, env_index  # noqa: F401  (batching.concat, as before)
from mtcrl_lite.data.base import MTLData, Split

ENV_MODES = ("dataset", "random")


def training_environments(data: MTLData, mode: str = "dataset", seed: int = 0) -> MTLData:
    """`data` with the training environments of `train.envs`: "dataset" returns it unchanged; "random" pools the
    training environments and deals a seeded random permutation of the pool into environments random0, random1, ...
    with the sizes of the dataset's (in order). Validation and test are untouched."""
    if mode not in ENV_MODES:
        raise ValueError(f"train.envs must be one of {ENV_MODES}, got {mode!r}")
    if mode == "dataset":
        return data
    sizes = [len(s) for s in data.train_envs.values()]
    pooled = data.train_all()
    perm = np.random.default_rng([int(seed), 20221]).permutation(len(pooled))
    cuts = np.cumsum([0] + sizes)
    envs = {f"random{i}": pooled.take(np.sort(perm[a:b])) for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:]))}
    return dataclasses.replace(data, train_envs=envs, info={**data.info, "train_envs": "random", "env_seed": seed})


def epoch_plan(sizes: dict[str, int], batch_size: int, seed: int, epoch: int) -> list[dict[str, np.ndarray]]:
    """Index batches for one epoch: every step holds batch_size // E samples of every environment.

    Steps per epoch = ceil(largest environment / per-environment batch); smaller environments cycle through
    fresh permutations. Seeded by (seed, epoch) so a resumed run replays the same batches.
    """
    per_env = batch_size // len(sizes)
    if per_env < 1:
        raise ValueError(f"train.batch_size = {batch_size} is smaller than the number of environments ({len(sizes)})")
    rng = np.random.default_rng([seed, epoch])
    steps = max(math.ceil(n / per_env) for n in sizes.values())
    streams = {}
    for env, n in sizes.items():
        reps = math.ceil(steps * per_env / n)
        streams[env] = np.concatenate([rng.permutation(n) for _ in range(reps)])
    return [{env: s[i * per_env : (i + 1) * per_env] for env, s in streams.items()} for i in range(steps)]


class EpochPlan(Sampler):
    """The epoch plan as a Sampler: yields one `{env: indices}` per step (see `epoch_plan`)."""

    def __init__(self, sizes: dict[str, int], batch_size: int, seed: int, epoch: int):
        self.steps = epoch_plan(sizes, batch_size, seed, epoch)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)


class EnvBatches(Dataset):
    """Item `{env: indices}` -> `{env: (x, {task: y})}`: one training step over every environment."""

    def __init__(self, envs: dict[str, Split]):
        self.envs = envs

    def __len__(self) -> int:
        return max(len(s) for s in self.envs.values())

    def __getitem__(self, idx: dict[str, np.ndarray]):
        return {e: self.envs[e][ix] for e, ix in idx.items()}


def to_device(batch, device, non_blocking: bool = False):
    """(x, {task: y}) or {env: (x, {task: y})} moved to `device`."""
    if isinstance(batch, dict):
        return {e: to_device(b, device, non_blocking) for e, b in batch.items()}
    x, y = batch
    return x.to(device, non_blocking=non_blocking), {t: v.to(device, non_blocking=non_blocking) for t, v in y.items()}


def to_batch(split: Split, idx, device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The samples `idx` of `split` as tensors on `device` (uint8 inputs scaled to [0, 1])."""
    return to_device(split[np.asarray(idx)], device)


def _loader_kwargs(num_workers: int, device) -> dict:
    if num_workers < 0:
        raise ValueError(f"train.num_workers must be >= 0, got {num_workers}")
    return {
        "batch_size": None,
        "num_workers": num_workers,
        "pin_memory": torch.device(device).type == "cuda",
        "persistent_workers": False,
    }


def train_steps(
    envs: dict[str, Split], batch_size: int, seed: int, epoch: int, num_workers: int = 0, device="cpu"
) -> DataLoader:
    """DataLoader over one epoch's steps, each `{env: (x, {task: y})}` (on the CPU; see to_device)."""
    plan = EpochPlan({e: len(s) for e, s in envs.items()}, batch_size, seed, epoch)
    return DataLoader(EnvBatches(envs), sampler=plan, **_loader_kwargs(num_workers, device))


def eval_batches(
    split: Split, n: int | None = None, chunk: int = 256, num_workers: int = 0, device="cpu"
) -> DataLoader:
    """DataLoader over the first `n` samples of `split` (all if None) in order, `chunk` at a time."""
    n = len(split) if n is None else min(n, len(split))
    sampler = BatchSampler(SequentialSampler(range(n)), chunk, drop_last=False)
    return DataLoader(split, sampler=sampler, **_loader_kwargs(num_workers, device))
