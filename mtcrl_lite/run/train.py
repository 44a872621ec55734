"""The runner: one (dataset, method, seed, config) -> one run directory.

    python -m mtcrl_lite.run.train --dataset multimnist --method mtcrl --seed 0 --out DIR \
        [--epochs N] [--smoke | --scale full] [--set key=value ...] [--force]
    torchrun --nproc_per_node=N -m mtcrl_lite.run.train ...      # one run over N processes (distributed.py)

Writes DIR/config.json and DIR/results.jsonl atomically after every epoch, keeps the weights of the epoch chosen
on validation in DIR/model_best.pt (`load_trained(DIR)` reads them back), checkpoints every epoch, resumes
an interrupted run from its checkpoint (bit-identical on CPU), and reuses a finished run unless --force.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mtcrl_lite import __version__
from mtcrl_lite.baselines.methods import NonFiniteLossError, get_method
from mtcrl_lite.data import DATASETS, ArraySplit, DataMissingError, MTLData, build_dataset
from mtcrl_lite.data.batching import (  # noqa: F401  (epoch_plan, to_batch: API)
    epoch_plan,
    eval_batches,
    to_batch,
    to_device,
    train_steps,
    training_environments,
)
from mtcrl_lite.models import distributed as D
from mtcrl_lite.models.networks import build_model, count_parameters
from mtcrl_lite.paths import REPO_ROOT
from mtcrl_lite.run.checkpoint import CHECKPOINT, discard_state, load_best, load_state, save_best, save_state
from mtcrl_lite.run.config import RunConfig, config_from_dict, make_config, parse_sets
from mtcrl_lite.run.evaluate import evaluate, finalize
from mtcrl_lite.run.guards import (
    LOCK,
    DivergenceMonitor,
    InactivePenaltyWarning,
    RunDirConflict,
    RunDirLock,
    inactive_penalties,
    prepare_out_dir,
)
from mtcrl_lite.run.rundir import RunWriteError, atomic_write_text, is_finished, read_json, read_results, write_jsonl
from mtcrl_lite.run.schedule import lr_factor, set_lr


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(
            f"train.device = {name!r} is not a torch device; use --set train.device=cpu, cuda, cuda:N or auto"
        ) from e
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        seen = (
            f"{torch.cuda.device_count()} GPU(s) are visible"
            if torch.cuda.is_available()
            else "no GPU is visible" + (" (this torch is a CPU-only build)" if torch.version.cuda is None else "")
        )
        raise ValueError(
            f"train.device = {name!r} but {seen}; run on the CPU with --set train.device=cpu, or "
            f"--set train.device=auto to use a GPU when there is one"
        )
    return device


@functools.lru_cache(maxsize=2)
def _dataset_cached(name: str, data_json: str) -> MTLData:
    cls = DATASETS[name][0]
    return build_dataset(
        name, cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(data_json).items()})
    )


def load_data(cfg: RunConfig) -> MTLData:
    """The run's dataset, with the training environments of `train.envs` (batching.training_environments); the
    dataset is built once per process for a given data config (runs of a sweep share it)."""
    data = _dataset_cached(cfg.dataset, json.dumps(dataclasses.asdict(cfg.data), sort_keys=True))
    return training_environments(data, cfg.train.envs, cfg.seed)


def provenance() -> dict:
    try:
        rev = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        rev, dirty = "unknown", None
    return {
        "git_revision": rev,
        "git_dirty": dirty,
        "mtcrl_lite": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "processor": processor(),
    }


# instruction sets whose presence changes which CPU kernels torch and numpy run (and so the last bits of a number)
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")


def processor(cpuinfo: str | None = None) -> dict:
    """The processor a run ran on: its model name, machine, the ISA flags that select CPU kernels, and torch's
    own CPU capability. The same config and seed give bit-identical numbers on one machine, not across
    processors (docs/RESULTS.md: what to expect on other hardware)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {
        "model": fields.get("model name") or fields.get("CPU part") or platform.processor() or "unknown",
        "machine": platform.machine(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def build_method(cfg: RunConfig, data: MTLData, device):
    spec = get_method(cfg.method)
    torch.manual_seed(cfg.seed)
    model = D.shard(build_model(spec.cls.model_kind, data.model_input, data.tasks, cfg.model).to(device))
    return spec.cls(model, data.tasks, cfg.hp, cfg.train.lr, cfg.train.weight_decay, list(data.train_envs))


def check_eval_files(data: MTLData, chunk: int, num_workers: int, log) -> None:
    """Read the validation and test samples once before the first epoch, so that a damaged file among them stops the
    run now, naming it, rather than after an epoch of training. Every epoch's evaluation reads them all anyway, so
    this costs less than one epoch's evaluation; in-memory splits were read when the dataset was built."""
    lazy = [s for s in (data.val, data.test) if not isinstance(s, ArraySplit)]
    t0 = time.perf_counter()
    for split in lazy:
        for _ in eval_batches(split, None, chunk, num_workers):
            pass
    if lazy:
        log(f"read all {sum(map(len, lazy))} validation and test samples in {time.perf_counter() - t0:.1f} s")


def missing_labels(data: MTLData, log) -> dict | int | None:
    """The count of missing label files that the dataset keeps unlabelled (data.missing_labels=invalid), said once;
    run() records it in config.json. None for datasets without label files."""
    n = data.info.get("missing_label_files")
    total = sum(n.values()) if isinstance(n, dict) else n
    if total:
        each = f" ({', '.join(f'{t} {k}' for t, k in n.items() if k)})" if isinstance(n, dict) else ""
        log(
            f"{data.name}: {total} label file(s) missing{each}: those samples are unlabelled for that task "
            f"(data.missing_labels=invalid); recorded in config.json as missing_label_files"
        )
    return n


def _claim_out_dir(out: Path, digest: str, force: bool, log, lock: RunDirLock) -> bool:
    """True if `out` already holds this finished run (reuse it); otherwise lock it and make it ready for training."""
    if not force and is_finished(out, digest):  # reading needs no lock: a read-only copy of finished runs is reused
        log(f"reusing finished run {out}")
        return True
    prepare_out_dir(out)  # an existing file or a read-only directory fails here, before any training
    lock.acquire(out)  # and from here on, this process alone writes `out`
    cfg_path = out / "config.json"
    if cfg_path.exists():
        old = {} if force else read_json(cfg_path)  # --force clears even a config.json that cannot be parsed
        if force:
            for p in out.iterdir():
                if p.name != LOCK:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        elif old.get("digest") != digest:
            raise RunDirConflict(
                f"{out} holds a run with another config (digest {old.get('digest')} != {digest}); "
                f"pass --force to overwrite it or choose another --out"
            )
        elif is_finished(out):  # finished by the writer that held the lock until now
            log(f"reusing finished run {out}")
            return True
        elif (out / CHECKPOINT).exists() and old.get("world_size", 1) != D.world()[1]:
            raise RunDirConflict(
                f"{out} was started on {old.get('world_size', 1)} process(es) and is resumed on "
                f"{D.world()[1]}; resume it with torchrun --nproc_per_node={old.get('world_size', 1)} "
                f"(or without torchrun for 1), so that it resumes bit-identically, or pass --force"
            )
    return False


def _rows_before(res_path: Path, start: int | None, out: Path, log) -> list[dict]:
    """The epoch rows a resumed run starts from (none for a fresh run), checked against the checkpoint."""
    if start is None:
        return []
    rows = [r for r in read_results(out) if r["kind"] == "epoch" and r["epoch"] < start]
    if [r["epoch"] for r in rows] != list(range(start)):
        missing = sorted(set(range(start)) - {r["epoch"] for r in rows})
        raise RunDirConflict(
            f"{res_path} is behind {out / CHECKPOINT}: the checkpoint is after epoch {start - 1} "
            f"but the results lack epochs {missing or 'in order'}; pass --force to start the run "
            f"over, or delete {out / CHECKPOINT} to retrain it from epoch 0"
        )
    log(f"resuming {out} at epoch {start}")
    return rows


def run(cfg: RunConfig, out, force: bool = False, progress: bool = True, log=print) -> Path:
    """Train (or resume, or reuse) one run; returns its directory. Under torchrun every rank calls it; rank 0 alone
    writes the run directory (holding its lock, guards.RunDirLock, until the run ends) and evaluates
    (distributed.py)."""
    out = Path(out)
    with RunDirLock() as lock:
        if not D.on_rank0(lambda: _claim_out_dir(out, cfg.digest(), force, log, lock)):
            _train(cfg, out, progress, log)
    return out


def _train(cfg: RunConfig, out: Path, progress: bool, log) -> None:
    cfg_path, res_path = out / "config.json", out / "results.jsonl"
    digest = cfg.digest()
    rank, world_size = D.world()
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(cfg.train.threads)  # fixed: a run's numbers do not depend on what shares the machine
    device = D.local_device(resolve_device(cfg.train.device))
    data = load_data(cfg)
    method = build_method(cfg, data, device)
    tc = cfg.train
    steps_per_epoch = len(epoch_plan({e: len(s) for e, s in data.train_envs.items()}, tc.batch_size, cfg.seed, 0))
    D.check_step_size(tc.batch_size // len(data.train_envs) * len(data.train_envs))
    inactive = inactive_penalties(cfg, data.train_envs)
    for why in inactive.values():
        warnings.warn(why, InactivePenaltyWarning, stacklevel=2)
    missing = D.on_rank0(lambda: missing_labels(data, log))
    D.on_rank0(lambda: check_eval_files(data, tc.eval_batch_size, tc.num_workers, log))
    D.on_rank0(
        lambda: cfg_path.exists()
        or atomic_write_text(
            cfg_path,
            json.dumps(  # every rank calls on_rank0
                {
                    **cfg.to_dict(),
                    "digest": digest,
                    **provenance(),
                    "n_params": count_parameters(method.model),
                    "device": str(device),
                    "world_size": world_size,
                    "inactive_penalties": inactive,
                    **({} if missing is None else {"missing_label_files": missing}),
                },
                indent=1,
                sort_keys=True,
            ),
        )
    )
    start = load_state(out, method, device, digest)  # every rank (the run directory is on a shared filesystem)
    rows = D.on_rank0(lambda: _rows_before(res_path, start, out, log))
    start = start or 0
    train_eval = data.train_all()
    bar = tqdm(
        total=steps_per_epoch * tc.epochs,
        initial=steps_per_epoch * start,
        disable=not progress or rank > 0,
        desc=f"{cfg.dataset}/{cfg.method}/seed{cfg.seed}",
        leave=False,
    )
    ev = dict(chunk=tc.eval_batch_size, num_workers=tc.num_workers)
    monitor = DivergenceMonitor(method, tc.lr)

    def end_epoch(epoch: int, t0: float, sums: dict) -> None:
        metrics = {
            "train": evaluate(method, data, train_eval, device, tc.eval_train_max, **ev),
            "val": evaluate(method, data, data.val, device, **ev),
            "test": evaluate(method, data, data.test, device, **ev),
        }
        rows.append(
            {
                "kind": "epoch",
                "epoch": epoch,
                "steps": (epoch + 1) * steps_per_epoch,
                "metrics": metrics,
                "loss": {k: v / steps_per_epoch for k, v in sums.items()},
                "A": method.routing_graph(),
                "time_s": time.perf_counter() - t0,
            }
        )
        if finalize(rows, data.tasks)["selected_epoch"] == epoch:  # new best on validation: keep its weights
            save_best(out, method.model)
        write_jsonl(res_path, rows)
        save_state(out, epoch, method, digest)

    for epoch in range(start, tc.epochs):
        t0, sums = time.perf_counter(), {}
        steps = train_steps(data.train_envs, tc.batch_size, cfg.seed, epoch, tc.num_workers, device)
        for i, batch in enumerate(steps):
            step = epoch * steps_per_epoch + i
            set_lr(method.optimizer, lr_factor(tc.schedule, step, steps_per_epoch * tc.epochs))
            try:
                logs = method.update(to_device(batch, device, non_blocking=True), step)
                monitor.check(logs, step)
            except NonFiniteLossError as err:  # or TrainingDiverged
                raise type(err)(f"epoch {epoch}: {err}") from None
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(loss=f"{logs['total']:.3f}", refresh=False)
        D.on_rank0(lambda: end_epoch(epoch, t0, sums))  # rank 0 evaluates and writes; every rank waits for it
    bar.close()

    def end_run() -> None:
        write_jsonl(res_path, rows + [finalize(rows, data.tasks)])
        discard_state(out)

    D.on_rank0(end_run)  # and no rank returns before the run directory is complete


def load_trained(run_dir, device="cpu"):
    """(method with the validation-selected weights, RunConfig, MTLData) of a finished run, for analysis."""
    run_dir = Path(run_dir)
    if not is_finished(run_dir):
        raise FileNotFoundError(f"{run_dir} holds no finished run; train it with python -m mtcrl_lite.run.train")
    cfg = config_from_dict(read_json(run_dir / "config.json"))
    data = load_data(cfg)
    method = build_method(cfg, data, torch.device(device))
    load_best(run_dir, method.model, device)
    method.eval()
    return method, cfg, data


# what the command lines (train, grid.sweep, grid.search) print in one line, without a traceback
INPUT_ERRORS = (KeyError, ValueError, RunDirConflict)  # exit code 2: the arguments, the config, a run folder
RUN_ERRORS = (DataMissingError, NonFiniteLossError, RunWriteError)  # exit code 1: the data, divergence, the disk
CLI_ERRORS = INPUT_ERRORS + RUN_ERRORS


def print_error(e: BaseException) -> int:
    """Print one of CLI_ERRORS on stderr as `error: <message>`; returns its exit code."""
    if isinstance(e, RUN_ERRORS):
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)  # a KeyError's message without its quotes
    return 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.run.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory (config.json, results.jsonl, checkpoint.pt)")
    p.add_argument("--epochs", type=int, default=None, help="shorthand for --set train.epochs=N")
    p.add_argument("--smoke", action="store_true", help="tiny CI scale (same as --scale smoke)")
    p.add_argument("--scale", default="default", choices=["smoke", "default", "full"])
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set hp.lambda_girm=100 --set data.n_val=500",
    )
    p.add_argument("--force", action="store_true", help="discard an existing run in --out")
    p.add_argument("--untuned", action="store_true", help="ignore tuning/tuned.json (the registry defaults)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        overrides = parse_sets(args.sets)
        if args.epochs is not None:
            overrides["train.epochs"] = args.epochs
        cfg = make_config(
            args.dataset,
            args.method,
            args.seed,
            "smoke" if args.smoke else args.scale,
            overrides,
            tuned=not args.untuned,
        )
        rank = D.init_from_env(cfg.train.device)[0]  # under torchrun: join its process group
        out = run(cfg, args.out, force=args.force, progress=not args.quiet)
    except CLI_ERRORS as e:
        return print_error(e)
    finally:
        D.close()
    if rank > 0:
        return 0
    final = read_results(out)[-1]
    n_params = read_json(out / "config.json")["n_params"]
    print(
        json.dumps(
            {
                "run": str(out),
                "n_params": n_params,
                "selected_epoch": final["selected_epoch"],
                "test": {t: m[final["primary"][t]] for t, m in final["metrics"]["test"].items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
