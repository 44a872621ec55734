"""MNIST IDX files and the Multi-MNIST generator (DoubleMNIST geometry, label-label correlation shift).

Canvas (Sun 2019, DoubleMNIST): 64x64, the left digit inside columns 0-31, the right digit inside
columns 32-63, each 28x28 digit at a uniformly random offset inside its half. Task `left` and task
`right` are 10-way classifications.

Two shift types (docs/METHOD §4):
* ``shift="corr"``: in an environment with strength p, the right label equals f(left) = (left + c) % 10
  with probability p and is uniform otherwise, so P(right = f(left)) = p + (1 - p)/10. Training
  environments differ in p (default 0.9 and 0.7); validation and test are independent (p = 0).
  A model that reads the right digit off the left half is right 10 % of the time on the test split.
* ``shift="pairs"``: the 100 (left, right) pair classes are split 64/16/20 by a seeded permutation into
  train/val/test, so test pairs never occur in training; the 64 training pairs are dealt round-robin
  into the training environments.

Digit instances are disjoint across splits: train environments draw from MNIST-train[:50000], validation
from MNIST-train[50000:], test from MNIST-test (`split_pools`). `build_from_pools` also takes a (left, right)
pair of pools per split, which `fashion.py` uses for Multi-Fashion and Fashion+MNIST.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data.base import ArraySplit, MTLData
from mtcrl_lite.data.sources import verify

CANVAS = 64
DIGIT = 28
N_VAL_POOL = 10_000


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file: magic (2 zero bytes, dtype byte 0x08 = uint8, ndim), big-endian uint32 dims, data."""
    raw = Path(path).read_bytes()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an uint8 IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {tuple(dims)} but holds {data.size} bytes")
    return data.reshape(tuple(dims))


def load_mnist(root=None) -> dict[str, np.ndarray]:
    """The four MNIST arrays, sha256-verified. Raises DataMissingError (with the fetch command) if absent."""
    folder = verify("mnist", root)
    return {
        "train_x": read_idx(folder / "train-images-idx3-ubyte"),
        "train_y": read_idx(folder / "train-labels-idx1-ubyte"),
        "test_x": read_idx(folder / "t10k-images-idx3-ubyte"),
        "test_y": read_idx(folder / "t10k-labels-idx1-ubyte"),
    }


class DigitPool:
    """Images grouped by class so that `sample(labels, rng)` draws one random image per label, vectorized."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, n_classes: int = 10):
        order = np.argsort(labels, kind="stable")
        self.images = images[order]
        counts = np.bincount(labels, minlength=n_classes)
        if (counts == 0).any():
            raise ValueError(f"digit pool lacks classes {np.flatnonzero(counts == 0).tolist()}")
        self.start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.count = counts

    def sample(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pick = self.start[labels] + (rng.random(len(labels)) * self.count[labels]).astype(np.int64)
        return self.images[pick]


def compose(
    left: np.ndarray, right: np.ndarray, rng: np.random.Generator, downsample: int = 1, chunk: int = 4096
) -> np.ndarray:
    """Place two batches of 28x28 digits on 64x64 canvases (uint8), then average-pool by `downsample`."""
    n = len(left)
    if left.shape[1:] != (DIGIT, DIGIT) or right.shape != left.shape:
        raise ValueError(f"compose needs two (N, 28, 28) arrays, got {left.shape} and {right.shape}")
    if CANVAS % downsample:
        raise ValueError(f"downsample must divide {CANVAS}, got {downsample}")
    half = CANVAS // 2
    dy = rng.integers(0, CANVAS - DIGIT + 1, size=(2, n))
    dx = rng.integers(0, half - DIGIT + 1, size=(2, n)) + np.array([[0], [half]])
    side = CANVAS // downsample
    out = np.empty((n, side, side), dtype=np.uint8)
    r = np.arange(DIGIT)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        canvas = np.zeros(m * CANVAS * CANVAS, dtype=np.uint8)
        base = (np.arange(m) * CANVAS * CANVAS)[:, None, None]
        for k, digits in enumerate((left, right)):
            rows = (dy[k, s : s + m, None] + r)[:, :, None] * CANVAS
            cols = (dx[k, s : s + m, None] + r)[:, None, :]
            canvas[base + rows + cols] = digits[s : s + m]
        canvas = canvas.reshape(m, CANVAS, CANVAS)
        if downsample > 1:
            pooled = np.zeros((m, side, side), dtype=np.uint16)
            for i in range(downsample):  # strided sums: ~15x faster than reshape().sum()
                for j in range(downsample):
                    pooled += canvas[:, i::downsample, j::downsample]
            canvas = ((pooled + downsample**2 // 2) // downsample**2).astype(np.uint8)
        out[s : s + m] = canvas
    return out


def correlated_labels(n: int, p: float, shift: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Left uniform; right = (left + shift) % 10 with probability p, else uniform."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"correlation strength must be in [0, 1], got {p}")
    yl = rng.integers(0, 10, n)
    yr = np.where(rng.random(n) < p, (yl + shift) % 10, rng.integers(0, 10, n))
    return yl, yr


def pair_class_split(seed: int, sizes=(64, 16, 20)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 100 (left, right) pair classes, as codes 10*left + right, split by a seeded permutation."""
    if sum(sizes) != 100:
        raise ValueError(f"pair split sizes must add to 100, got {sizes}")
    perm = np.random.default_rng(seed).permutation(100)
    a, b = sizes[0], sizes[0] + sizes[1]
    return np.sort(perm[:a]), np.sort(perm[a:b]), np.sort(perm[b:])


def pair_labels(n: int, codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c = codes[rng.integers(0, len(codes), n)]
    return c // 10, c % 10


@dataclass
class MultiMNISTConfig:
    """Data parameters of Multi-MNIST (all overridable with --set data.KEY=VALUE)."""

    shift: str = "corr"  # "corr" (label-label correlation) or "pairs" (disjoint pair classes)
    train_corrs: tuple[float, ...] = (0.9, 0.7)  # one training environment per entry (shift="corr")
    val_corr: float = 0.0
    test_corr: float = 0.0
    corr_shift: int = 1  # f(left) = (left + corr_shift) % 10
    n_pair_envs: int = 2  # training environments for shift="pairs"
    n_train_per_env: int = 6000
    n_val: int = 2000
    n_test: int = 4000
    downsample: int = 2  # 1: 64x64 (paper geometry), 2: 32x32 (CPU default)
    data_seed: int = 0  # the data is fixed across training seeds unless changed
    root: str = ""  # data cache ("" = default)


TASKS = [Task("left", "classification", 10), Task("right", "classification", 10)]


Pools = DigitPool | tuple[DigitPool, DigitPool]  # one pool for both halves, or (left pool, right pool)


def split_pools(arrays: dict[str, np.ndarray]) -> dict[str, DigitPool]:
    """The three disjoint pools of a 60,000 + 10,000 IDX dataset (MNIST, Fashion-MNIST): train = train[:50000],
    val = train[50000:], test = the test set; so no image instance is in two splits."""
    x, y = arrays["train_x"], arrays["train_y"]
    return {
        "train": DigitPool(x[:-N_VAL_POOL], y[:-N_VAL_POOL]),
        "val": DigitPool(x[-N_VAL_POOL:], y[-N_VAL_POOL:]),
        "test": DigitPool(arrays["test_x"], arrays["test_y"]),
    }


def build_from_pools(cfg: MultiMNISTConfig, pools: dict[str, Pools], name: str) -> MTLData:
    """The two-item dataset of `cfg` from {split: pool} ("train", "val", "test"); a split's pool is one DigitPool
    for both halves or a (left, right) pair, e.g. Fashion-MNIST items on the left and MNIST digits on the right."""
    rng = np.random.default_rng(cfg.data_seed)

    def make(pool: Pools, yl: np.ndarray, yr: np.ndarray) -> ArraySplit:
        left, right = pool if isinstance(pool, tuple) else (pool, pool)
        x = compose(left.sample(yl, rng), right.sample(yr, rng), rng, cfg.downsample)
        return ArraySplit(x[:, None], {"left": yl.astype(np.int64), "right": yr.astype(np.int64)})

    info = {"shift": cfg.shift, "input": f"{CANVAS // cfg.downsample}x{CANVAS // cfg.downsample}"}
    if cfg.shift == "corr":
        names = [f"p={p:g}" for p in cfg.train_corrs]
        if len(set(names)) < len(names):  # equal correlations (a shift curve at 0): number them
            names = [f"env{i}:{n}" for i, n in enumerate(names)]
        envs = {
            n: make(pools["train"], *correlated_labels(cfg.n_train_per_env, p, cfg.corr_shift, rng))
            for n, p in zip(names, cfg.train_corrs)
        }
        val = make(pools["val"], *correlated_labels(cfg.n_val, cfg.val_corr, cfg.corr_shift, rng))
        test = make(pools["test"], *correlated_labels(cfg.n_test, cfg.test_corr, cfg.corr_shift, rng))
    elif cfg.shift == "pairs":
        tr, va, te = pair_class_split(cfg.data_seed)
        groups = [tr[i :: cfg.n_pair_envs] for i in range(cfg.n_pair_envs)]
        envs = {
            f"pairs{i}": make(pools["train"], *pair_labels(cfg.n_train_per_env, g, rng)) for i, g in enumerate(groups)
        }
        val = make(pools["val"], *pair_labels(cfg.n_val, va, rng))
        test = make(pools["test"], *pair_labels(cfg.n_test, te, rng))
        info["pair_classes"] = {"train": tr.tolist(), "val": va.tolist(), "test": te.tolist()}
    else:
        raise ValueError(f"unknown shift {cfg.shift!r}; valid: 'corr', 'pairs'")
    f = lambda s: float(np.mean(s.y["right"] == (s.y["left"] + cfg.corr_shift) % 10)) if len(s) else None
    info["P(right=f(left))"] = {**{e: f(s) for e, s in envs.items()}, "val": f(val), "test": f(test)}
    return MTLData(name, list(TASKS), envs, val, test, info)


def build_multimnist(cfg: MultiMNISTConfig) -> MTLData:
    return build_from_pools(cfg, split_pools(load_mnist(cfg.root or None)), "multimnist")


def fake_digits(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 28x28 'digits' (a fixed random stroke pattern per class plus noise) for the debug dataset."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((10, DIGIT, DIGIT)) < 0.25) * 255.0
    labels = np.repeat(np.arange(10), n_per_class)
    imgs = protos[labels] * (rng.random((len(labels), DIGIT, DIGIT)) < 0.8)
    return imgs.astype(np.uint8), labels


@dataclass
class DebugConfig(MultiMNISTConfig):
    """A tiny Multi-MNIST made of synthetic digits: no download, for tests (DomainBed's debug datasets)."""

    n_train_per_env: int = 64
    n_val: int = 64
    n_test: int = 64
    downsample: int = 4


def build_debug(cfg: DebugConfig) -> MTLData:
    x, y = fake_digits(20, cfg.data_seed)
    pool = DigitPool(x, y)
    return build_from_pools(cfg, {"train": pool, "val": pool, "test": pool}, "debug")
