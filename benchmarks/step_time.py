"""Training-step time of every method relative to vanilla MTL, same model config and same batches.

    python benchmarks/step_time.py [--dataset multimnist] [--steps 30] [--batch 128]
    python benchmarks/step_time.py --dataset scenes --batch 64      # dense: five encoder-decoder tasks
Targets: mtcrl <= 1.15x mtl (dense: with hp.girm_grad = first_order, the scenes preset). STL trains T networks, and
PCGrad/GradVac need one backward pass per task, so about T x is their floor (T = 2 on Multi-MNIST). The default
--methods is every registered method: the torchjd aggregators (CAGrad, Nash-MTL and FairGrad add a solver call per
step to that floor), the loss weightings (DWA and UW about 1x; FAMO one extra forward pass) and mtl-strong (1x).
"""

import argparse
import time

import torch

from mtcrl_lite.baselines.methods import METHODS
from mtcrl_lite.run.config import make_config
from mtcrl_lite.run.train import build_method, epoch_plan, load_data, to_batch


def prepare(name, dataset, steps, batch, warmup=5):
    over = {"train.batch_size": batch}
    if name.startswith("mtcrl"):
        over["hp.anneal_steps"] = 0  # time the step with the penalty switched on
    cfg = make_config(dataset, name, 0, overrides=over)
    data = load_data(cfg)
    m = build_method(cfg, data, torch.device("cpu"))
    plan = epoch_plan({e: len(s) for e, s in data.train_envs.items()}, batch, 0, 0)
    batches = [{e: to_batch(data.train_envs[e], ix, "cpu") for e, ix in idx.items()} for idx in plan[: warmup + steps]]
    for i in range(warmup):
        m.update(batches[i], i)
    return m, batches[warmup:]


def time_steps(method, batches):
    t = time.perf_counter()
    for i, b in enumerate(batches):
        method.update(b, 1000 + i)
    return (time.perf_counter() - t) / len(batches)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="multimnist")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--methods", nargs="+", default=sorted(METHODS))
    p.add_argument("--rounds", type=int, default=3, help="round-robin repeats; the best round counts")
    args = p.parse_args()
    prepared = {m: prepare(m, args.dataset, args.steps, args.batch) for m in args.methods}
    times = {m: float("inf") for m in args.methods}
    for _ in range(args.rounds):  # interleaved, so machine noise hits every method alike
        for m, (method, batches) in prepared.items():
            times[m] = min(times[m], time_steps(method, batches))
    base = times.get("mtl")
    print(
        f"step time on {args.dataset}, batch {args.batch}, {torch.get_num_threads()} threads "
        f"(best of {args.rounds} interleaved rounds of {args.steps} steps):"
    )
    for m, t in times.items():
        ratio = f"{t / base:.2f}x mtl" if base else ""
        print(f"  {m:14s} {1000 * t:7.1f} ms  {ratio}")


if __name__ == "__main__":
    main()
