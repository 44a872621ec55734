"""Checkpoints of a run directory: the per-epoch training state (resume) and the validation-selected weights.

Both are written to a temporary file and renamed, so a run killed mid-write keeps the previous complete file.
Both hold a SHA-256 of their contents (every tensor's bytes, dtype and shape, and every other value), checked on
load: damage to the tensor data, which torch.load does not notice, is a CheckpointError naming the file. Files
written before the checksum existed load unchecked.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from mtcrl_lite.run.rundir import atomic_write_bytes

CHECKPOINT, BEST = "checkpoint.pt", "model_best.pt"


class CheckpointError(ValueError):
    """A checkpoint is damaged or belongs to another config; the message names the file and the fix."""


def checksum(obj) -> str:
    """SHA-256 of a (nested dict / list / tuple of) tensors and plain values, independent of the tensors' device."""
    h = hashlib.sha256()

    def feed(o):
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(o, dict):
            h.update(f"D{len(o)}".encode())
            for k, v in o.items():
                feed(k)
                feed(v)
        elif isinstance(o, (list, tuple)):
            h.update(f"L{len(o)}".encode())
            for v in o:
                feed(v)
        else:
            h.update(f"V{o!r}".encode())

    feed(obj)
    return h.hexdigest()


def _atomic_save(obj: dict, path: Path) -> None:
    """Serialised in memory first: torch.save into a file on a full disk fails with an error that names neither."""
    buf = io.BytesIO()
    torch.save({**obj, "sha256": checksum(obj)}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, device, fix: str) -> dict:
    """torch.load `path` and verify its checksum; any damage is a CheckpointError naming the file and `fix`."""
    try:
        ck = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # a damaged zip, a truncated file, an unpickling error, ...
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path} cannot be read ({why}): it is damaged; {fix}") from None
    if isinstance(ck, dict) and "sha256" in ck:
        want = ck.pop("sha256")
        if checksum(ck) != want:
            raise CheckpointError(f"{path} is damaged: its contents do not match the checksum stored with them; {fix}")
    return ck


def save_state(run_dir: Path, epoch: int, method, digest: str | None = None) -> None:
    """Everything needed to resume after `epoch`: the method's state (model and its buffers) and the optimizer's,
    with the digest of the run's config."""
    _atomic_save(
        {"epoch": epoch, "method": method.state_dict(), "optimizer": method.optimizer.state_dict(), "digest": digest},
        Path(run_dir) / CHECKPOINT,
    )


def load_state(run_dir: Path, method, device, digest: str | None = None) -> int | None:
    """Restore the last checkpoint into `method`; returns the epoch to start from, or None if there is none.
    With `digest`, a checkpoint written under another config digest is an error."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    fix = f"delete {path} to retrain the run from epoch 0, or pass --force to start it over"
    ck = _load(path, device, fix)
    if digest is not None and ck.get("digest") not in (None, digest):
        raise CheckpointError(
            f"{path} was written under config digest {ck['digest']}, but the run's config.json "
            f"has digest {digest}; {fix}"
        )
    method.load_state_dict(ck["method"])
    method.optimizer.load_state_dict(ck["optimizer"])
    return ck["epoch"] + 1


def discard_state(run_dir: Path) -> None:
    (Path(run_dir) / CHECKPOINT).unlink(missing_ok=True)


def save_best(run_dir: Path, model) -> None:
    _atomic_save({"model": model.state_dict()}, Path(run_dir) / BEST)


def load_best(run_dir: Path, model, device) -> None:
    path = Path(run_dir) / BEST
    ck = _load(path, device, "retrain the run with --force")
    model.load_state_dict(ck["model"] if set(ck) == {"model"} else ck)  # files written before: a bare state_dict
