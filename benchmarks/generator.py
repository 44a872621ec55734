"""Multi-MNIST generator throughput (images per second on one core). Target: >= 50k/s.

    python benchmarks/generator.py [--n 50000]
Needs MNIST in the cache (python -m mtcrl_lite.data fetch mnist).
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from mtcrl_lite.data.mnist import DigitPool, compose, correlated_labels, load_mnist  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    m = load_mnist()
    pool = DigitPool(m["train_x"], m["train_y"])
    for downsample in (1, 2):
        best = float("inf")
        for r in range(args.repeats):
            rng = np.random.default_rng(r)
            t = time.perf_counter()
            yl, yr = correlated_labels(args.n, 0.9, 1, rng)
            compose(pool.sample(yl, rng), pool.sample(yr, rng), rng, downsample)
            best = min(best, time.perf_counter() - t)
        side = 64 // downsample
        print(
            f"generator {side}x{side}: {args.n / best:,.0f} images/s "
            f"(labels + sampling + compose, best of {args.repeats})"
        )


if __name__ == "__main__":
    main()
