"""What the NYUv2 and CityScapes loaders share: the MTAN preprocessed .npy layout, the group lists that split a
benchmark by scene type or city, the optional manifest that names each sample's group, and the fallback split.

MTAN layout (lorenmt/mtan, im2im_pred/create_dataset.py; read for the array layouts, not copied)::

    ROOT/{train,val}/image/{i}.npy     float (H, W, 3), RGB in [0, 1]
    ROOT/{train,val}/<label>/{i}.npy   label (H, W) class ids with -1 = ignore; depth (H, W, 1); normal (H, W, 3)

i = 0 .. n-1 per folder; the samples of a folder are the image files, sorted by index.

Group lists (`read_groups`): one text file per benchmark, one line per part::

    train/<env>: name, name, ...     # a training environment = the samples of these groups
    val: name, ...
    test: name, ...

'#' starts a comment. A name (a scene type, a city) belongs to one line at most. A manifest (`read_manifest`) is a
CSV `split,index,<key>` giving the group of every sample of the MTAN folders (split = train or val).
"""

from __future__ import annotations

import csv
import functools
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mtcrl_lite.data.sources import DataMissingError, read_file

if TYPE_CHECKING:
    from mtcrl_lite.data.base import MTLData

PARTS = ("train", "val", "test")
MTAN_SPLITS = ("train", "val")  # the folders of the MTAN layout
MISSING_POLICIES = ("error", "invalid")


def read_groups(path: Path) -> dict:
    """{"envs": {env: [names]}, "val": [names], "test": [names]} of a group list (module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"group list {path} not found")
    out, seen = {"envs": {}, "val": [], "test": []}, {}
    for no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, rest = line.partition(":")
        key = key.strip()
        names = [n.strip() for n in rest.split(",") if n.strip()]
        if not sep or not names or not (key in ("val", "test") or (key.startswith("train/") and key[6:])):
            raise ValueError(f"{path}:{no}: expected 'train/<env>: a, b', 'val: a, b' or 'test: a, b', got {line!r}")
        for n in names:
            if n in seen:
                raise ValueError(
                    f"{path}:{no}: {n!r} is already listed on line {seen[n]}; a group belongs to one part only"
                )
            seen[n] = no
        if key.startswith("train/"):
            out["envs"].setdefault(key[6:], []).extend(names)
        else:
            out[key].extend(names)
    empty = [k for k in ("val", "test") if not out[k]] + ([] if out["envs"] else ["train/<env>"])
    if empty:
        raise ValueError(f"{path}: no line for {empty}")
    return out


def read_manifest(path: Path, key: str) -> dict[tuple[str, int], str]:
    """{(split, index): value} from a CSV with the header `split,index,<key>`."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]] if rows else []
    if header[:3] != ["split", "index", key]:
        raise ValueError(f"{path}: the header must be 'split,index,{key}', got {','.join(header) or 'nothing'}")
    out = {}
    for no, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            split, index, value = row[0].strip(), int(row[1]), row[2].strip()
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{no}: expected split,index,{key} (index an integer), got {row}") from None
        if split not in MTAN_SPLITS:
            raise ValueError(f"{path}:{no}: split must be one of {MTAN_SPLITS}, got {split!r}")
        out[(split, index)] = value
    return out


def npy_indices(folder: Path) -> list[int]:
    """Sorted indices i of the files {i}.npy in `folder` ([] if it does not exist)."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(n[:-4]) for n in names if n.endswith(".npy") and n[:-4].isdigit())


def scan_mtan(root: Path, label_folders: Sequence[str], max_items: int = 0):
    """({split: [indices]}, [missing label paths]) of the MTAN layout; the samples are the image files."""
    index, missing = {}, []
    for split in MTAN_SPLITS:
        ids = npy_indices(root / split / "image")
        index[split] = ids[:max_items] if max_items > 0 else ids
        for folder in label_folders:
            have = set(npy_indices(root / split / folder))
            missing += [root / split / folder / f"{i}.npy" for i in index[split] if i not in have]
    return index, missing


def missing_files_error(name: str, missing: Sequence[Path], root: Path) -> DataMissingError:
    shown = "\n".join(f"    {p}" for p in list(missing)[:10])
    return DataMissingError(
        f"{name}: {len(missing)} label file(s) missing under {root}, e.g.\n{shown}\n"
        f"Restore them, or set data.missing_labels=invalid to keep those samples unlabelled "
        f"for that task."
    )


def split_by_groups(keys: dict, groups: dict) -> tuple[dict, dict[str, int]]:
    """Deal samples (keys: {sample: group name}) into {"envs": {env: [samples]}, "val": [...], "test": [...]}
    following `groups` (read_groups); also returns {group: count} of the samples whose group is on no line."""
    where = {n: ("envs", e) for e, names in groups["envs"].items() for n in names}
    where.update({n: (p, None) for p in ("val", "test") for n in groups[p]})
    parts = {"envs": {e: [] for e in groups["envs"]}, "val": [], "test": []}
    unlisted: dict[str, int] = {}
    for sample, g in keys.items():
        if g not in where:
            unlisted[g] = unlisted.get(g, 0) + 1
            continue
        part, env = where[g]
        (parts["envs"][env] if env else parts[part]).append(sample)
    return parts, unlisted


def fallback_split(train: Sequence, val: Sequence, n_envs: int, seed: int) -> dict:
    """Without group information: the training samples dealt at random (seeded) into n_envs environments of
    (almost) equal size, the validation samples shuffled and cut in two disjoint halves, val and test."""
    rng = np.random.default_rng([seed, 13])
    n_envs = max(1, n_envs)
    order = rng.permutation(len(train))
    envs = {f"env{k}": [train[i] for i in sorted(chunk)] for k, chunk in enumerate(np.array_split(order, n_envs))}
    vo = rng.permutation(len(val))
    half = (len(val) + 1) // 2
    return {"envs": envs, "val": [val[i] for i in sorted(vo[:half])], "test": [val[i] for i in sorted(vo[half:])]}


def out_hw(stored: tuple[int, int], size: int) -> tuple[int, int]:
    """Output (height, width) for data.size = the output height (0 = as stored), the width following the aspect."""
    h, w = stored
    return (h, w) if size <= 0 else (size, max(1, round(size * w / h)))


def resize_image(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(3, H, W) float image -> (3, h, w) float32 by area averaging (adaptive average pooling)."""
    if img.shape[1:] == tuple(hw):
        return img.astype(np.float32, copy=False)
    import torch

    t = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(img, np.float32))[None], hw)
    return t[0].numpy()


def decode_classes(raw: np.ndarray, n_classes: int, path, name: str) -> np.ndarray:
    """Class ids (any numeric dtype holding integers) -> int64, -1 = ignore; anything else names the file."""
    a = np.asarray(raw)
    if a.size and (not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or a.min() < -1 or a.max() >= n_classes):
        raise ValueError(
            f"{name}: {path} holds values outside the integers -1..{n_classes - 1} "
            f"(-1 = ignore, 0..{n_classes - 1} classes)"
        )
    return a.astype(np.int64)


def unit_or_nan(v: np.ndarray) -> np.ndarray:
    """(..., 3) vectors -> (3, ...) float32 unit vectors, NaN where the vector is shorter than 0.5 (e.g. 0)."""
    v = v.astype(np.float32)
    norm = np.sqrt((v * v).sum(-1, keepdims=True))
    n = np.where(norm >= 0.5, v / np.maximum(norm, 1e-12), np.nan).astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(n, -1, 0))


def _load_npy(path: Path, mmap_mode=None) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":  # else np.load tries pickle, and its error suggests allow_pickle=True
            raise ValueError("not a .npy file")
    return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def load_npy(path: Path, shape_tail: tuple, name: str) -> np.ndarray:
    """np.load of one array whose trailing axes must be `shape_tail` (None = any); errors name the file."""
    if not path.exists():
        raise DataMissingError(f"{name}: file {path} is missing; restore it (or set data.missing_labels=invalid)")
    a = read_file(name, path, _load_npy)
    want = len(shape_tail)
    if a.ndim != want or any(s is not None and a.shape[k] != s for k, s in enumerate(shape_tail)):
        want_text = tuple("*" if s is None else s for s in shape_tail)
        raise ValueError(f"{name}: {path} has shape {a.shape}; expected {want_text}")
    return a


# ----------------------------------------------------------------------------------------------------------------
# Reading one sample of the MTAN layout, and building a benchmark from it

IGNORE = -1


@dataclass(frozen=True)
class MtanSpec:
    """What every sample of one dataset shares: per task (name, folder, kind, classes), the output size."""

    name: str  # dataset name, for messages
    root: str
    tasks: tuple[tuple[str, str, str, int], ...]  # (task, folder, kind: segmentation|depth|normal, n_classes)
    hw: tuple[int, int]
    missing_labels: str = "error"


@dataclass(frozen=True, slots=True)
class MtanItem:
    spec: MtanSpec
    split: str  # train or val (the MTAN folder)
    index: int

    def path(self, folder: str) -> Path:
        return Path(self.spec.root) / self.split / folder / f"{self.index}.npy"


def invalid_label(kind: str, hw: tuple[int, int]) -> np.ndarray:
    """An all-invalid label of a kind: -1 everywhere (classes) or NaN (depth (1, h, w), normal (3, h, w))."""
    if kind == "segmentation":
        return np.full(hw, IGNORE, np.int64)
    return np.full((3 if kind == "normal" else 1, *hw), np.nan, np.float32)


def decode_depth(raw: np.ndarray) -> np.ndarray:
    """(H, W) depth or inverse depth -> float32 with NaN where it is 0 (the MTAN / CityScapes "no value"),
    negative or not finite."""
    d = raw.astype(np.float32)
    d[~(np.isfinite(d) & (d > 0))] = np.nan
    return d


def read_mtan(item: MtanItem) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(x float32 (3, h, w) in [0, 1], {task: label}) of one sample; labels are resized nearest-neighbour."""
    from mtcrl_lite.data.taskonomy import resize_nearest

    spec = item.spec
    img = load_npy(item.path("image"), (None, None, 3), spec.name)
    x = resize_image(np.moveaxis(img, -1, 0), spec.hw)
    y = {}
    for task, folder, kind, n_classes in spec.tasks:
        p = item.path(folder)
        if not p.exists() and spec.missing_labels == "invalid":
            y[task] = invalid_label(kind, spec.hw)
            continue
        if kind == "segmentation":
            y[task] = resize_nearest(
                decode_classes(load_npy(p, (None, None), spec.name), n_classes, p, spec.name), spec.hw
            )
        elif kind == "depth":
            y[task] = resize_nearest(decode_depth(load_npy(p, (None, None, 1), spec.name)[..., 0]), spec.hw)[None]
        else:
            y[task] = (
                resize_nearest(unit_or_nan(load_npy(p, (None, None, 3), spec.name)).transpose(1, 2, 0), spec.hw)
                .transpose(2, 0, 1)
                .copy()
            )
    return x, y


def stored_hw(path: Path, name: str) -> tuple[int, int]:
    return tuple(read_file(name, path, functools.partial(_load_npy, mmap_mode="r")).shape[:2])


def assign_parts(
    name: str, samples: dict[str, list], keys: dict | None, groups_path: Path, key: str, n_envs: int, seed: int
) -> tuple[dict, dict]:
    """Parts {"envs": {env: [...]}, "val": [...], "test": [...]} of the samples {mtan split: [sample]} and info.

    keys ({sample: group}, from a manifest) given: split by the group list; None: `fallback_split` with a warning."""
    if keys is None:
        warnings.warn(
            f"{name}: no {key} information for the samples, so the split is NOT by {key}: MTAN's train "
            f"folder is dealt at random into {max(1, n_envs)} environment(s), its val folder cut in two "
            f"halves (val, test); see the data card for the manifest that splits by {key}",
            stacklevel=3,
        )
        parts = fallback_split(samples["train"], samples["val"], n_envs, seed)
        return parts, {"split_by": "random (no manifest)", "envs": {e: len(v) for e, v in parts["envs"].items()}}
    groups = read_groups(groups_path)
    parts, unlisted = split_by_groups(keys, groups)
    if unlisted:
        warnings.warn(f"{name}: samples of {key}(s) on no line of {groups_path} are left out: {unlisted}", stacklevel=3)
    empty = [e for e, v in parts["envs"].items() if not v] + [p for p in ("val", "test") if not parts[p]]
    if empty:
        raise ValueError(
            f"{name}: no sample for {empty} under the {key} lists of {groups_path}; the manifest names "
            f"{sorted(set(keys.values()))}"
        )
    return parts, {"split_by": key, "groups": groups, "unlisted": unlisted}


def build_mtan(
    name: str,
    cfg,
    tasks: dict,
    task_specs: dict,
    manifest: str,
    key: str,
    groups_path: Path,
    layout_text: str,
    official_text: str,
) -> MTLData:
    """A benchmark in the MTAN layout. cfg: root, tasks, size, max_items, n_envs, data_seed, missing_labels.
    task_specs {task: (folder, kind, n_classes)}; `manifest` (a CSV under ROOT with the header split,index,<key>)
    splits by groups, else fallback."""
    from mtcrl_lite.data.base import FileSplit, MTLData

    unknown = [t for t in cfg.tasks if t not in tasks]
    if unknown or not cfg.tasks:
        raise ValueError(f"{name}: unknown or no tasks {list(cfg.tasks)}; valid: {tuple(tasks)}")
    if cfg.missing_labels not in MISSING_POLICIES:
        raise ValueError(f"{name}: missing_labels must be one of {MISSING_POLICIES}, got {cfg.missing_labels!r}")
    names = tuple(t for t in tasks if t in cfg.tasks)
    root = Path(cfg.root)
    index, missing = scan_mtan(root, [task_specs[t][0] for t in names], cfg.max_items)
    if not index["train"] or not index["val"]:
        raise DataMissingError(
            f"{name}: no data under {root} (image files found: train {len(index['train'])}, val "
            f"{len(index['val'])}).\nExpected the MTAN preprocessed layout:\n{layout_text}\n{official_text}"
        )
    if missing and cfg.missing_labels == "error":
        raise missing_files_error(name, missing, root)
    hw = out_hw(stored_hw(root / "train" / "image" / f"{index['train'][0]}.npy", name), cfg.size)
    spec = MtanSpec(name, str(root), tuple((t, *task_specs[t]) for t in names), hw, cfg.missing_labels)
    samples = {s: [MtanItem(spec, s, i) for i in index[s]] for s in MTAN_SPLITS}
    keys = None
    if (root / manifest).exists():
        table = read_manifest(root / manifest, key)
        unnamed = [f"{it.split}/{it.index}" for s in MTAN_SPLITS for it in samples[s] if (s, it.index) not in table]
        if unnamed:
            raise ValueError(
                f"{name}: {root / manifest} names no {key} for {len(unnamed)} sample(s), e.g. "
                f"{unnamed[:5]}; add a row split,index,{key} for each"
            )
        keys = {it: table[(it.split, it.index)] for s in MTAN_SPLITS for it in samples[s]}
    parts, split_info = assign_parts(name, samples, keys, groups_path, key, cfg.n_envs, cfg.data_seed)
    envs = {e: FileSplit(v, read_mtan, names) for e, v in parts["envs"].items()}
    val, test = FileSplit(parts["val"], read_mtan, names), FileSplit(parts["test"], read_mtan, names)
    info = {
        "stand_in": False,
        "root": str(root),
        "layout": "mtan",
        "hw": hw,
        **split_info,
        "n_samples": {**{e: len(s) for e, s in envs.items()}, "val": len(val), "test": len(test)},
        "missing_label_files": len(missing),
        "ignore_index": IGNORE,
    }
    return MTLData(name, [tasks[t] for t in names], envs, val, test, info)


def write_array(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, a)


def write_mtan_fixture(
    root: Path,
    hw: tuple[int, int],
    n: dict[str, int],
    folders: dict[str, str],
    n_classes: int,
    rng: np.random.Generator,
    leave_out: str | None = None,
) -> None:
    """Random samples in the MTAN layout; folders {folder: kind}. Per sample: image in [0, 1]; classes in 4x4
    blocks with the top-left block -1 (ignore); depth in [0.5, 8) with the top quarter of the rows 0 (invalid);
    unit normals, 0-vectors where depth is invalid. `leave_out` (a folder) omits train/<folder>/0.npy."""
    h, w = hw
    for split, k in n.items():
        for i in range(k):
            arrays = {"image": rng.random((h, w, 3)).astype(np.float32)}
            for folder, kind in folders.items():
                if kind == "segmentation":
                    seg = np.kron(rng.integers(0, n_classes, (4, 4)), np.ones((h // 4, w // 4), np.int64))
                    seg[: h // 4, : w // 4] = IGNORE
                    arrays[folder] = seg.astype(np.float32)
                elif kind == "depth":
                    d = rng.uniform(0.5, 8.0, (h, w, 1)).astype(np.float32)
                    d[: h // 4] = 0.0
                    arrays[folder] = d
                else:
                    v = rng.normal(size=(h, w, 3))
                    v /= np.linalg.norm(v, axis=-1, keepdims=True)
                    v[: h // 4] = 0.0
                    arrays[folder] = v.astype(np.float32)
            for folder, a in arrays.items():
                if not (folder == leave_out and split == "train" and i == 0):
                    write_array(root / split / folder / f"{i}.npy", a)


def write_manifest(path: Path, key: str, n: dict[str, int], names: Sequence[str]) -> None:
    """split,index,<key> rows, the names dealt in turn over the samples of train then val."""
    rows = [(s, i) for s in MTAN_SPLITS for i in range(n.get(s, 0))]
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["split", "index", key])
        for k, (s, i) in enumerate(rows):
            wr.writerow([s, i, names[k % len(names)]])
