"""One run over N processes (`torchrun --nproc_per_node=N -m mtcrl_lite.run.train ...`) that equals the one-process run
on the same global batch, for every method.

Every rank reads the whole training step (the epoch plan depends on (seed, epoch) only) and runs each shared encoder
(every submodule named `encoder`) on its share of the samples, x[rank::N]; the encoder's output is all-gathered,
differentiably, back into the step's order. Heads, the routing graph A and every loss (task risks, L_dec, G-IRM, IRM,
V-REx, DANN's discriminator) therefore see the whole step on every rank, as in one process: the expensive part, the
encoder, is split; the rest is repeated. Batch normalisation inside an encoder uses the statistics of the whole step
(GlobalBatchNorm: torch's SyncBatchNorm refuses CPU tensors, and the gloo tests run on the CPU).

Gradients. Every rank computes the same loss F. Backward through an all-gather sums over ranks, so a rank holds
N x dF/d(its copy of the encoder) and dF/d(heads, A); the mean over ranks (`sync_grads`, before every optimizer step)
is dF/dθ for every parameter. Methods that combine per-task gradients of the shared encoder (PCGrad, GradVac, the
torchjd aggregators) average the T x P matrix over ranks before combining it (`sync_mean`), so they stay exact.
Without torchrun (WORLD_SIZE unset or 1) every function here is a no-op.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.autograd.function import once_differentiable


def world() -> tuple[int, int]:
    """(rank, number of processes); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device_name: str = "auto") -> tuple[int, int]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR in the environment): NCCL when the
    run trains on GPUs, gloo otherwise. Returns (rank, world size); (0, 1) when not launched by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or world()[1] > 1:
        return world()
    gpu = device_name != "cpu" and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    init_group("nccl" if gpu else "gloo", timeout=timedelta(minutes=30))
    return world()


def init_group(backend: str, **kwargs) -> None:
    """dist.init_process_group(backend, **kwargs), after importing torch._inductor (what run() would import).

    run() calls torch.use_deterministic_algorithms, which imports torch._inductor; that import, made while a process
    group exists, keeps a reference to the group (torch 2.13), so destroy_process_group no longer joins gloo's worker
    threads. One of them then releases a finished collective during interpreter shutdown and aborts the process
    ("terminate called without an active exception", SIGABRT; 2 of 25 two-process CPU runs on a loaded machine, and
    once in CI). Imported before the group, it holds nothing, and close() joins the threads."""
    import torch._inductor.config  # noqa: F401  (see above)

    dist.init_process_group(backend, **kwargs)


def close() -> None:
    """Leave the process group once every rank is done (no rank tears down its connections under a peer still
    using them); with init_group, this also ends the backend's threads before the interpreter shuts down."""
    if world()[1] > 1:
        dist.barrier()
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """cuda -> this process's GPU (LOCAL_RANK) under torchrun; anything else unchanged."""
    if device.type == "cuda" and world()[1] > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def on_rank0(fn):
    """fn() on rank 0, its result (or its exception) sent to every rank: what rank 0 alone does (the run directory,
    evaluation) ends for every rank at once, so an error there cannot leave the others waiting in a collective."""
    rank, n = world()
    if n == 1:
        return fn()
    box = [None]
    if rank == 0:
        try:
            box = [("ok", fn())]
        except BaseException as e:  # noqa: BLE001  (an interrupt too: re-raised on every rank below)
            box = [("error", e)]
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def check_step_size(n_samples: int) -> None:
    """A step's samples must split evenly over the processes (x[rank::N] of equal sizes)."""
    n = world()[1]
    if n_samples % n:
        raise ValueError(
            f"a training step holds {n_samples} samples, which do not split over {n} processes; choose "
            f"train.batch_size so that (batch_size // number of environments) x environments is a "
            f"multiple of {n}, e.g. --set train.batch_size={n_samples - n_samples % n or n}"
        )


def gather_steps(parts: list[torch.Tensor]) -> torch.Tensor:
    """The per-rank outputs for x[r::N] (r = 0..N-1) interleaved back into the order of x: row i*N + r = parts[r][i]."""
    return torch.stack(parts, 1).flatten(0, 1)


class _AllGather(torch.autograd.Function):
    """(N, *x.shape): every rank's x. Backward: the sum over ranks of the gradient of the gathered tensor, this rank's
    row (the adjoint of the gather). Public collectives only (torch.distributed.nn's version is deprecated)."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(world()[1])]
        dist.all_gather(parts, x.contiguous())
        return torch.stack(parts)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[world()[0]]


def all_gather(x: torch.Tensor) -> torch.Tensor:
    """(N, *x.shape), every rank's `x`, differentiable (gradients flow back to the rank that sent each row)."""
    return _AllGather.apply(x)


def _take_share(module, args):
    if not module.training:
        return None
    rank, n = world()
    check_step_size(len(args[0]))
    return (args[0][rank::n],) + tuple(args[1:])


def _gather_share(module, args, out):
    if not module.training:
        return None
    return gather_steps(list(all_gather(out)))


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the whole step in training (every rank's share), for 2-D to 5-D inputs; it takes over
    the parameters and buffers of the BatchNorm it replaces (same state keys, same Parameter objects)."""

    def _check_input_dim(self, x):
        if x.dim() not in (2, 3, 4, 5):
            raise ValueError(f"GlobalBatchNorm expects 2-D to 5-D input, got {x.dim()}-D")

    def forward(self, x):
        if not self.training or world()[1] == 1:
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.numel() // x.shape[1] * world()[1]  # equal shares (check_step_size)
        mean = all_gather(x.sum(dims)).sum(0) / count
        var = all_gather(((x - mean.view(shape)) ** 2).sum(dims)).sum(0) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * count / max(count - 1, 1))
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def _global_norms(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm replaced by a GlobalBatchNorm that holds the same Parameters and buffers (so an
    optimizer built before still steps them)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new._parameters, new._buffers = child._parameters, child._buffers
            setattr(module, name, new)
        else:
            _global_norms(child)
    return module


def shard(model: nn.Module) -> nn.Module:
    """Under torchrun, make every outermost submodule named `encoder` run on this rank's share of a training step and
    return the whole step's output (see the module docstring); unchanged in one process or in eval mode. Calling it
    again changes nothing. Returns `model`."""
    if world()[1] == 1:
        return model
    names = [n for n, _ in model.named_modules() if n.split(".")[-1] == "encoder"]
    outer = [n for n in names if not any(n.startswith(o + ".") for o in names)]
    if not outer:
        raise ValueError(f"{type(model).__name__} has no submodule named 'encoder' to split over processes")
    for enc in (model.get_submodule(n) for n in outer):
        if getattr(enc, "_mtcrl_sharded", False):
            continue
        _global_norms(enc)
        enc.register_forward_pre_hook(_take_share)
        enc.register_forward_hook(_gather_share)
        enc._mtcrl_sharded = True
    return model


def sync_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of `t` over ranks (in place; `t` itself in one process)."""
    n = world()[1]
    if n > 1:
        dist.all_reduce(t)
        t /= n
    return t


def sync_grads(optimizer: torch.optim.Optimizer) -> None:
    """Average every gradient of `optimizer`'s parameters over ranks, in one flat all-reduce."""
    if world()[1] == 1:
        return
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = sync_mean(torch.cat([g.reshape(-1) for g in grads]))
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
