"""Synthetic-scene renderer throughput (images per second on one core), at 32x32 and 64x64.

    python benchmarks/scenes.py [--n 1024] [--repeats 3]
Times render_scenes (layout sampling, ray casting, all five label maps and the RGB image) for one building,
and build_scenes at the default ScenesConfig. Prints numbers only; no assertion.
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from mtcrl_lite.data.scenes import ScenesConfig, build_scenes, render_scenes, sample_style  # noqa: E402


def best_of(fn, repeats):
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        fn(r)
        best = min(best, time.perf_counter() - t)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1024, help="images per timed call at 32x32 (a quarter at 64x64)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    style = sample_style(np.random.default_rng(0))
    for size, n in ((32, args.n), (64, max(1, args.n // 4))):
        dt = best_of(lambda r: render_scenes(n, style, np.random.default_rng(r), size, 0.9), args.repeats)
        print(f"render_scenes {size}x{size}: {n / dt:,.0f} images/s ({n} images in {dt:.3f} s, best of {args.repeats})")
    cfg = ScenesConfig()
    total = len(cfg.env_strengths) * cfg.buildings_per_env * cfg.images_per_building + cfg.n_val + cfg.n_test
    dt = best_of(lambda r: build_scenes(cfg), args.repeats)
    print(f"build_scenes(ScenesConfig()): {total} images at {cfg.size}x{cfg.size} in {dt:.2f} s")


if __name__ == "__main__":
    main()
