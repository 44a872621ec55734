"""Fashion-MNIST (Xiao et al. 2017) and two shifted benchmarks made by the Multi-MNIST generator.

* `multifashion`: two Fashion-MNIST items side by side (Multi-MNIST with clothes instead of digits).
* `fashionmnist`: a Fashion-MNIST item on the left, an MNIST digit on the right, so the two tasks see different
  input statistics.

Both use `mnist.build_from_pools` unchanged in everything else: the same canvas, tasks `left`/`right` (10-way),
label-label confounder right = (left + corr_shift) % 10 with probability p per environment, `MultiMNISTConfig`,
and the same split discipline for each source (train environments from train[:50000], validation from
train[50000:], test from the test set).
"""

from __future__ import annotations

import numpy as np

from mtcrl_lite.data.base import MTLData
from mtcrl_lite.data.mnist import MultiMNISTConfig, build_from_pools, load_mnist, read_idx, split_pools
from mtcrl_lite.data.sources import verify

# label -> class name (the dataset's README)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def load_fashion(root=None) -> dict[str, np.ndarray]:
    """The four Fashion-MNIST arrays (60,000 + 10,000 28x28 uint8, labels 0-9), sha256-verified, as `load_mnist`.
    Raises DataMissingError (with the fetch command) if absent."""
    folder = verify("fashion", root)
    return {
        "train_x": read_idx(folder / "train-images-idx3-ubyte"),
        "train_y": read_idx(folder / "train-labels-idx1-ubyte"),
        "test_x": read_idx(folder / "t10k-images-idx3-ubyte"),
        "test_y": read_idx(folder / "t10k-labels-idx1-ubyte"),
    }


def build_multifashion(cfg: MultiMNISTConfig) -> MTLData:
    return build_from_pools(cfg, split_pools(load_fashion(cfg.root or None)), "multifashion")


def build_fashionmnist(cfg: MultiMNISTConfig) -> MTLData:
    fashion, mnist = split_pools(load_fashion(cfg.root or None)), split_pools(load_mnist(cfg.root or None))
    return build_from_pools(cfg, {s: (fashion[s], mnist[s]) for s in fashion}, "fashionmnist")
