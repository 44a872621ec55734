"""Training-step time of every method relative to vanilla MTL, same model config and same batches.

    python benchmarks/step_time.py [--dataset multimnist] [--steps 30] [--batch 128]
Targets: mtcrl <= 1.15x mtl. STL trains T networks, so ~T x is its floor.
"""
import argparse
import time

import torch

from mtcrl_lite.config import make_config
from mtcrl_lite.methods import METHODS
from mtcrl_lite.train import build_method, epoch_plan, load_data, to_batch


def time_method(name, dataset, steps, batch, warmup=5):
    over = {"train.batch_size": batch}
    if name.startswith("mtcrl"):
        over["hp.anneal_steps"] = 0          # time the step with the penalty switched on
    cfg = make_config(dataset, name, 0, overrides=over)
    data = load_data(cfg)
    m = build_method(cfg, data, torch.device("cpu"))
    plan = epoch_plan({e: len(s) for e, s in data.train_envs.items()}, batch, 0, 0)
    batches = [{e: to_batch(data.train_envs[e], ix, "cpu") for e, ix in idx.items()}
               for idx in plan[:warmup + steps]]
    for i in range(warmup):
        m.update(batches[i], i)
    t = time.perf_counter()
    for i in range(warmup, warmup + steps):
        m.update(batches[i], i)
    return (time.perf_counter() - t) / steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="multimnist")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--methods", nargs="+", default=sorted(METHODS))
    args = p.parse_args()
    times = {m: time_method(m, args.dataset, args.steps, args.batch) for m in args.methods}
    base = times.get("mtl")
    print(f"step time on {args.dataset}, batch {args.batch}, {torch.get_num_threads()} threads:")
    for m, t in times.items():
        ratio = f"{t / base:.2f}x mtl" if base else ""
        print(f"  {m:14s} {1000 * t:7.1f} ms  {ratio}")


if __name__ == "__main__":
    main()
