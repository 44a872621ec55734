"""Peak memory of evaluating a dense model on 1,000 vs 10,000 images: it must not grow with the split.

    python benchmarks/eval_memory.py [--sizes 1000 10000] [--size 64]

Each size runs in a fresh process that evaluates an MTL encoder-decoder (segmentation with 13 classes, depth,
normals, NYUv2-like) on a lazy split whose samples are generated on read (so the data itself is never held in
memory), and prints the process's peak resident memory (ru_maxrss) and the time. Streaming metrics
(mtcrl_lite.core.meters) keep O(1) state per task; a concatenating evaluation would grow by about
N x H x W x (13 + 1 + 3) x 4 bytes (10,000 images at 64x64: 2.8 GB).
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from functools import partial

import numpy as np


def synthetic_sample(i: int, size: int):
    rng = np.random.default_rng(i)
    v = rng.normal(size=(3, size, size)).astype(np.float32)
    return (
        rng.integers(0, 256, (3, size, size), dtype=np.uint8),
        {
            "seg": rng.integers(-1, 13, (size, size)),
            "depth": rng.random((1, size, size), dtype=np.float32),
            "normal": v / np.linalg.norm(v, axis=0, keepdims=True),
        },
    )


def measure(n: int, size: int) -> dict:
    import torch

    from mtcrl_lite.baselines.methods import METHODS, default_hparams
    from mtcrl_lite.core.tasks import Task
    from mtcrl_lite.data.base import FileSplit, MTLData
    from mtcrl_lite.models.networks import ModelConfig, build_model
    from mtcrl_lite.run.evaluate import evaluate

    torch.set_num_threads(2)
    tasks = [
        Task("seg", "segmentation", 13, "miou"),
        Task("depth", "depth", 1, "abs_err"),
        Task("normal", "normal", 3, "mean_angle"),
    ]
    split = FileSplit(list(range(n)), partial(synthetic_sample, size=size), [t.name for t in tasks])
    data = MTLData("bench", tasks, {"e0": split}, split, split)
    model = build_model("mtl", (3, size, size), tasks, ModelConfig(channels=(8, 16), width=16))
    method = METHODS["mtl"].cls(model, tasks, default_hparams("mtl"), 1e-3, 0.0, ["e0"])
    t = time.perf_counter()
    evaluate(method, data, split, "cpu", chunk=64)
    return {
        "images": n,
        "size": size,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": round(time.perf_counter() - t, 1),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.size)))
        return
    for n in args.sizes:
        r = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--size", str(args.size)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(r.stdout.strip())


if __name__ == "__main__":
    main()
