"""Taskonomy (Zamir et al. 2018) as used by Standley et al. (2020) and MT-CRL: five dense tasks, split by building.

The data cannot be downloaded from our machines; this module reads a copy that a user brings, in the layout of the
official release (also the layout tstandley/taskgrouping's loader reads), and `write_fixture` writes a tiny dataset
in exactly that layout for the tests and for trying the pipeline.

Layout (ROOT = data.root, else $MTCRL_DATA/taskonomy, else data/cache/taskonomy)::

    ROOT/rgb/<building>/point_<p>_view_<v>_domain_rgb.png                         8-bit RGB
    ROOT/segment_semantic/<building>/point_<p>_view_<v>_domain_segmentsemantic.png  8-bit class ids
    ROOT/depth_zbuffer/<building>/point_<p>_view_<v>_domain_depth_zbuffer.png     16-bit, 1/512 m
    ROOT/normal/<building>/point_<p>_view_<v>_domain_normal.png                   8-bit RGB, 127-centred
    ROOT/keypoints2d/<building>/point_<p>_view_<v>_domain_keypoints2d.png         16-bit
    ROOT/edge_texture/<building>/point_<p>_view_<v>_domain_edge_texture.png       16-bit

Also accepted: `..._domain_segment_semantic.png` (the name taskgrouping's loader derives from the rgb name), files
named by the view alone (`point_<p>_view_<v>.png` in every folder, as taskgrouping's README draws it), and one extra
folder level `ROOT/<folder>/taskonomy/<building>/` (the omnidata downloader nests its components so). The views of a
building are the PNG files of its rgb folder, sorted by name; a label file is looked up under the same view name.

Normalisation (written from the definitions in the Taskonomy data README and the omnidata/taskgrouping loaders):

* rgb: uint8 (3, S, S), resized bilinearly (PIL; antialiased when shrinking). Split scales it to [0, 1].
* segment_semantic: int64 (S, S). The file holds 0 = "uncertain", 1 = background, 2..17 = the 16 COCO classes
  of CLASS_NAMES[1:]. Label = value - 1, so background = 0, classes 1..16, and "uncertain" = -1 = ignored
  (taskgrouping: cross-entropy with ignore_index=0 over 18 outputs; here 17 outputs, N_CLASSES). A value above 17
  is an error naming the file.
* depth_zbuffer: float32 (1, S, S) in metres = value / 512. Invalid (NaN): value >= depth_invalid_from. The
  default 8192 (16 m) is taskgrouping's mask (`depth < 2**13`); the rendering writes 65535 (the 16-bit maximum,
  128 m) where a ray hits no geometry, so depth_invalid_from=65535 masks only those pixels.
  (taskgrouping standardises valid depth as (value - 1500) / 1000; we keep metres, so abs_err is in metres.)
* normal: float32 (3, S, S): value / 127.5 - 1 per channel (channel order and camera frame of the file), then
  divided by its length, so every valid pixel is a unit vector. Invalid (NaN in all three channels): where the
  decoded vector is shorter than 0.5 (a grey, 127-centred "no normal" pixel) and, with normal_mask_from_depth
  (default), where the view's depth is invalid (taskgrouping masks normals with the depth mask, too).
* keypoints2d, edge_texture: float32 (1, S, S) = value / 65535 in [0, 1] (omnidata's scaling of 16-bit labels;
  taskgrouping standardises them as (v - 50) / 100 and (v - 718) / 1070 instead). They are defined at every pixel
  (2-D tasks computed from the image), so they carry no NaN unless their file is missing (below).

Labels are resized with nearest-neighbour sampling (pixel centres; `nearest_index`) before decoding, so classes stay
integral and no value is ever averaged with an invalid one. S = data.size (0 keeps the files' own size; the
release's rgb is 512 x 512, Standley et al. and MT-CRL train at 256).

A missing label file: with missing_labels="error" (default) `build_taskonomy` refuses to build and names the files;
with missing_labels="invalid" the view keeps that task's label all invalid (-1 / NaN), i.e. unlabelled for that
task, which the losses and metrics already skip (tasks.py), and info["missing_label_files"] counts them.

Splits are by building (taskonomy_splits/<split>_{train,val,test}.txt): training buildings are dealt round-robin,
in alphabetical order, into n_envs environments `env0..`; validation and test buildings are never trained on.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data.base import FileSplit, MTLData
from mtcrl_lite.data.sources import DataMissingError, open_image
from mtcrl_lite.paths import data_root

TASK_NAMES = ("segment_semantic", "depth_zbuffer", "normal", "keypoints2d", "edge_texture")
# background + the 16 COCO classes of taskbank/assets/web_assets/pseudosemantics/coco_selected_classes.txt
CLASS_NAMES = (
    "background",
    "bottle",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
)
N_CLASSES = len(CLASS_NAMES)  # 17
IGNORE = -1  # segment label of "uncertain" pixels (file value 0)
DEPTH_PER_METRE = 512  # depth_zbuffer units: 1/512 m
DEPTH_NO_HIT = 65535  # written where the ray hits nothing (128 m, the 16-bit maximum)
DEPTH_INVALID_FROM = 8192  # taskgrouping: valid where depth < 2**13 (16 m)
PIXEL_MAX = 65535  # keypoints2d / edge_texture: value / 65535
TASKS = {
    "segment_semantic": Task("segment_semantic", "segmentation", N_CLASSES, "miou"),
    "depth_zbuffer": Task("depth_zbuffer", "depth", 1, "abs_err"),
    "normal": Task("normal", "normal", 3, "mean_angle"),
    "keypoints2d": Task("keypoints2d", "pixel", 1, "l1"),
    "edge_texture": Task("edge_texture", "pixel", 1, "l1"),
}
# File-name domains accepted per folder, the official release's first.
DOMAINS = {
    "rgb": ("rgb",),
    "segment_semantic": ("segmentsemantic", "segment_semantic"),
    "depth_zbuffer": ("depth_zbuffer",),
    "normal": ("normal",),
    "keypoints2d": ("keypoints2d",),
    "edge_texture": ("edge_texture",),
}
SPLIT_DIR = Path(__file__).with_name("taskonomy_splits")
SPLITS = ("taskgrouping", "tiny", "medium", "full", "fullplus")
PARTS = ("train", "val", "test")
NESTED = "taskonomy"  # the omnidata downloader's component folder
MISSING_POLICIES = ("error", "invalid")


@dataclass
class TaskonomyConfig:
    """Data parameters of Taskonomy (all overridable with --set data.KEY=VALUE); see the module docstring."""

    root: str = ""  # "" = $MTCRL_DATA/taskonomy (else data/cache/taskonomy)
    tasks: tuple[str, ...] = TASK_NAMES  # any subset of TASK_NAMES; heads come in TASK_NAMES order
    size: int = 64  # side of every image after resizing (0 = as stored; paper: 256)
    split: str = "taskgrouping"  # building lists: taskgrouping, tiny, medium, full, fullplus
    split_dir: str = ""  # folder with <split>_{train,val,test}.txt ("" = the shipped lists)
    n_envs: int = 3  # training envs (buildings dealt round-robin); 0 = one a building
    max_per_building: int = 0  # first N views (sorted by name) of each building; 0 = all
    depth_invalid_from: int = DEPTH_INVALID_FROM  # depth values >= this are invalid (65535: only the no-hit pixels)
    normal_mask_from_depth: bool = True  # normals are invalid where the view's depth is invalid
    missing_labels: str = "error"  # a missing label file: "error" (refuse to build) or "invalid"


# ----------------------------------------------------------------------------------------------------------------
# Reading one view
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadSpec:
    """What every view of one dataset shares (one object referenced by all items)."""

    root: str
    tasks: tuple[str, ...]
    size: int = 0
    nested: str = ""  # "" or "taskonomy": ROOT/<folder>/<nested>/<building>/
    depth_invalid_from: int = DEPTH_INVALID_FROM
    normal_mask_from_depth: bool = True
    missing_labels: str = "error"


@dataclass(frozen=True, slots=True)
class TaskonomyView:
    """One sample: the view `view` ("point_<p>_view_<v>") of `building`. `names` maps each folder to the
    file-name template of that building ("{}_domain_rgb.png"), shared by the views of a building."""

    spec: ReadSpec
    building: str
    view: str
    names: tuple[tuple[str, str], ...]

    def path(self, folder: str) -> Path:
        spec = self.spec
        base = Path(spec.root) / folder
        if spec.nested:
            base = base / spec.nested
        return base / self.building / dict(self.names)[folder].format(self.view)


def nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel for nearest-neighbour resizing (pixel centres aligned)."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def resize_nearest(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes of `a` to `hw` (values are copied, never mixed)."""
    if a.shape[:2] == tuple(hw):
        return a
    return a[nearest_index(a.shape[0], hw[0])][:, nearest_index(a.shape[1], hw[1])]


def _open(path: Path):
    return open_image("taskonomy", path)


def _gray16(path: Path) -> np.ndarray:
    """A 16-bit grayscale PNG as int64 (H, W); anything else is an error naming the file."""
    im = _open(path)
    if not (im.mode.startswith("I;16") or im.mode == "I"):
        raise ValueError(f"taskonomy: {path} should be a 16-bit grayscale PNG (PIL mode I;16), got mode {im.mode}")
    a = np.asarray(im).astype(np.int64)
    if a.ndim != 2 or a.min(initial=0) < 0 or a.max(initial=0) > 65535:
        raise ValueError(f"taskonomy: {path} holds values outside 0..65535 or is not 2-D")
    return a


def decode_segment(raw: np.ndarray, path="segment_semantic") -> np.ndarray:
    """File values (0 uncertain, 1 background, 2..17 classes) -> int64 labels (-1 ignore, 0..16)."""
    if raw.size and raw.max() >= N_CLASSES + 1:
        raise ValueError(
            f"taskonomy: {path} holds class value {int(raw.max())}; valid values are 0..{N_CLASSES} "
            f"(0 uncertain, 1 background, 2..{N_CLASSES} objects)"
        )
    return raw.astype(np.int64) - 1


def decode_depth(raw: np.ndarray, invalid_from: int = DEPTH_INVALID_FROM) -> np.ndarray:
    """16-bit z-buffer values -> float32 metres (value / 512), NaN where value >= invalid_from."""
    d = raw.astype(np.float32) / np.float32(DEPTH_PER_METRE)
    d[raw >= invalid_from] = np.nan
    return d


def decode_normal(raw: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8, 127-centred -> (3, H, W) float32 unit vectors, NaN where the vector is shorter than 0.5."""
    v = raw.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    norm = np.sqrt((v * v).sum(-1, keepdims=True))
    n = np.where(norm >= 0.5, v / np.maximum(norm, 1e-12), np.nan).astype(np.float32)
    return np.ascontiguousarray(n.transpose(2, 0, 1))


def _read_rgb(item: TaskonomyView) -> np.ndarray:
    from PIL import Image

    im = _open(item.path("rgb"))
    if im.mode != "RGB":
        im = im.convert("RGB")
    s = item.spec.size
    if s and im.size != (s, s):
        im = im.resize((s, s), Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))


def _invalid(task: str, hw: tuple[int, int]) -> np.ndarray:
    if task == "segment_semantic":
        return np.full(hw, IGNORE, np.int64)
    return np.full((3 if task == "normal" else 1, *hw), np.nan, np.float32)


def _missing_file(item: TaskonomyView, task: str, path: Path) -> DataMissingError:
    return DataMissingError(
        f"taskonomy: label file {path} is missing (task {task}, building {item.building}, view {item.view}). "
        f"Restore it, or set data.missing_labels=invalid to keep the view with that task unlabelled."
    )


def read_sample(item: TaskonomyView) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(x uint8 (3, S, S), {task: label}) of one view; see the module docstring for each task's label."""
    spec = item.spec
    x = _read_rgb(item)
    hw = x.shape[1:]
    depth_raw = None
    if "depth_zbuffer" in spec.tasks or ("normal" in spec.tasks and spec.normal_mask_from_depth):
        p = item.path("depth_zbuffer")
        if p.exists():
            depth_raw = resize_nearest(_gray16(p), hw)
        elif "depth_zbuffer" in spec.tasks and spec.missing_labels == "error":
            raise _missing_file(item, "depth_zbuffer", p)
    y = {}
    for t in spec.tasks:
        if t == "depth_zbuffer":
            y[t] = _invalid(t, hw) if depth_raw is None else decode_depth(depth_raw, spec.depth_invalid_from)[None]
            continue
        p = item.path(t)
        if not p.exists():
            if spec.missing_labels == "error":
                raise _missing_file(item, t, p)
            y[t] = _invalid(t, hw)
            continue
        if t == "segment_semantic":
            im = _open(p)
            raw = np.asarray(im)
            if raw.ndim == 3:
                if not (raw == raw[..., :1]).all():
                    raise ValueError(f"taskonomy: {p} should be a one-channel class image, got mode {im.mode}")
                raw = raw[..., 0]
            y[t] = decode_segment(resize_nearest(raw.astype(np.int64), hw), p)
        elif t == "normal":
            im = _open(p)
            if im.mode not in ("RGB", "RGBA"):
                raise ValueError(f"taskonomy: {p} should be an 8-bit RGB PNG, got mode {im.mode}")
            n = decode_normal(resize_nearest(np.asarray(im)[..., :3], hw))
            if depth_raw is not None and spec.normal_mask_from_depth:
                n[:, depth_raw >= spec.depth_invalid_from] = np.nan
            y[t] = n
        else:  # keypoints2d, edge_texture
            y[t] = (resize_nearest(_gray16(p), hw).astype(np.float32) / np.float32(PIXEL_MAX))[None]
    return x, y


# ----------------------------------------------------------------------------------------------------------------
# Split lists, scanning, building
# ----------------------------------------------------------------------------------------------------------------


def read_building_list(path: Path) -> list[str]:
    """Building names, one a line; '#' starts a comment."""
    names = [line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines()]
    return [n for n in names if n]


def split_lists(split: str = "taskgrouping", split_dir: str | os.PathLike = "") -> dict[str, list[str]]:
    """{part: buildings} of a split; the parts never share a building."""
    folder = Path(split_dir) if split_dir else SPLIT_DIR
    if not split_dir and split not in SPLITS:
        raise ValueError(f"unknown Taskonomy split {split!r}; valid: {SPLITS} (or give data.split_dir)")
    lists = {}
    for part in PARTS:
        path = folder / f"{split}_{part}.txt"
        if not path.exists():
            raise FileNotFoundError(f"taskonomy: split list {path} not found")
        lists[part] = read_building_list(path)
    for i, a in enumerate(PARTS):
        for b in PARTS[i + 1 :]:
            both = sorted(set(lists[a]) & set(lists[b]))
            if both:
                raise ValueError(f"taskonomy split {split!r}: buildings in both {a} and {b}: {both}")
    return lists


def resolve_root(root: str = "") -> Path:
    return Path(root) if root else data_root() / "taskonomy"


def _folder(root: Path, nested: str, folder: str, building: str) -> Path:
    return root / folder / nested / building if nested else root / folder / building


def _list_png(d: Path) -> set[str]:
    try:
        return {f for f in os.listdir(d) if f.endswith(".png")}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _scan_building(root: Path, nested: str, building: str, folders: Sequence[str], limit: int):
    """(sorted view names, {folder: template}, {folder: [missing paths]}) of one building, one listdir a folder."""
    rgb = _list_png(_folder(root, nested, "rgb", building))
    suffix = "_domain_rgb.png"
    if any(f.endswith(suffix) for f in rgb):
        views, rgb_tpl = sorted(f[: -len(suffix)] for f in rgb if f.endswith(suffix)), "{}" + suffix
    else:
        views, rgb_tpl = sorted(f[:-4] for f in rgb), "{}.png"
    if limit > 0:
        views = views[:limit]
    names, missing = {"rgb": rgb_tpl}, {}
    for folder in folders:
        d = _folder(root, nested, folder, building)
        have = _list_png(d)
        candidates = [f"{{}}_domain_{dom}.png" for dom in DOMAINS[folder]] + ["{}.png"]
        tpl = next((c for c in candidates if any(c.format(v) in have for v in views)), candidates[0])
        names[folder] = tpl
        missing[folder] = [d / tpl.format(v) for v in views if tpl.format(v) not in have]
    return views, names, missing


def _layout_text(root: Path) -> str:
    rows = [f"    {root}/rgb/<building>/point_<p>_view_<v>_domain_rgb.png"]
    rows += [f"    {root}/{t}/<building>/point_<p>_view_<v>_domain_{DOMAINS[t][0]}.png" for t in TASK_NAMES]
    return "\n".join(rows)


def _missing_data_message(root: Path, split: str, lists: dict, missing: dict, reason: str) -> str:
    def few(names):
        return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")

    lines = [
        f"taskonomy: {reason}",
        f"Expected the per-building layout of the Taskonomy release under {root}:",
        _layout_text(root),
        f"(or one more folder level, {root}/<folder>/{NESTED}/<building>/, as the omnidata downloader writes it),",
        f"with one folder per building of the split lists of data.split={split!r} "
        f"(mtcrl_lite/data/taskonomy_splits/{split}_{{train,val,test}}.txt).",
        "Buildings of those lists not found: "
        + "; ".join(
            f"{p} {len(missing[p])}/{len(lists[p])}" + (f" ({few(missing[p])})" if missing[p] else "") for p in PARTS
        )
        + ".",
        "The data cannot be downloaded from this machine. It comes from the Taskonomy site "
        "(http://taskonomy.vision, https://github.com/StanfordVL/taskonomy/tree/master/data) through the "
        "omnidata downloader (pip install omnidata-tools; omnitools.download <domains> --components taskonomy "
        "--subset tiny|medium|full|fullplus --dest DIR, see https://docs.omnidata.vision); Standley et al.'s "
        "split lists come from https://github.com/tstandley/taskgrouping. Point data.root (or $MTCRL_DATA, "
        "which holds taskonomy/) at the copy, or choose a split whose buildings you have (data.split=tiny).",
        "To try the pipeline without the data: python -m mtcrl_lite.data fixture taskonomy DIR, then "
        "--set data.root=DIR.",
    ]
    return "\n".join(lines)


def build_taskonomy(cfg: TaskonomyConfig) -> MTLData:
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown or not cfg.tasks:
        raise ValueError(f"taskonomy: unknown or no tasks {list(cfg.tasks)}; valid: {TASK_NAMES}")
    if cfg.missing_labels not in MISSING_POLICIES:
        raise ValueError(f"taskonomy: missing_labels must be one of {MISSING_POLICIES}, got {cfg.missing_labels!r}")
    if cfg.size < 0:
        raise ValueError(f"taskonomy: size must be >= 0 (0 = as stored), got {cfg.size}")
    tasks = tuple(t for t in TASK_NAMES if t in cfg.tasks)
    root = resolve_root(cfg.root)
    lists = split_lists(cfg.split, cfg.split_dir)
    nested = NESTED if (root / "rgb" / NESTED).is_dir() else ""

    # one listdir per folder and building; depth is also read for the normal mask (a missing one is no error)
    folders = list(tasks)
    if "normal" in tasks and cfg.normal_mask_from_depth and "depth_zbuffer" not in tasks:
        folders.append("depth_zbuffer")
    scans, missing_b = {}, {p: [] for p in PARTS}
    for part in PARTS:
        for b in lists[part]:
            views, names, missing = _scan_building(root, nested, b, folders, cfg.max_per_building)
            if views:
                scans[b] = (views, names, missing)
            else:
                missing_b[part].append(b)
    empty = [p for p in PARTS if len(missing_b[p]) == len(lists[p])]
    if empty:
        reason = (
            f"no Taskonomy data under {root}"
            if not scans
            else f"no building of the {'/'.join(empty)} list(s) under {root}"
        )
        raise DataMissingError(_missing_data_message(root, cfg.split, lists, missing_b, reason))
    if any(missing_b.values()):
        warnings.warn(
            "taskonomy: buildings of split {!r} not under {}: {}; using the others (info['missing_buildings'])".format(
                cfg.split, root, ", ".join(f"{p} {len(missing_b[p])}/{len(lists[p])}" for p in PARTS)
            ),
            stacklevel=2,
        )

    missing_files = {t: [f for b in scans for f in scans[b][2][t]] for t in tasks}
    n_missing = sum(len(v) for v in missing_files.values())
    if n_missing and cfg.missing_labels == "error":
        shown = "\n".join(f"    {f}" for v in missing_files.values() for f in v[:10])
        raise DataMissingError(
            f"taskonomy: {n_missing} label file(s) missing under {root}, e.g.\n{shown}\n"
            f"Restore them, or set data.missing_labels=invalid to keep those views unlabelled for that task."
        )

    spec = ReadSpec(
        str(root), tasks, cfg.size, nested, cfg.depth_invalid_from, cfg.normal_mask_from_depth, cfg.missing_labels
    )

    def items(buildings):
        out = []
        for b in buildings:
            views, names, _ = scans[b]
            shared = tuple(sorted(names.items()))
            out += [TaskonomyView(spec, b, v, shared) for v in views]
        return out

    present = {p: [b for b in lists[p] if b in scans] for p in PARTS}
    train_b = sorted(present["train"])
    if cfg.n_envs > 0:
        if len(train_b) < cfg.n_envs:
            raise ValueError(
                f"taskonomy: {len(train_b)} training building(s) under {root}, fewer than "
                f"data.n_envs={cfg.n_envs}; lower n_envs or add buildings"
            )
        groups = {f"env{i}": train_b[i :: cfg.n_envs] for i in range(cfg.n_envs)}
    else:
        groups = {b: [b] for b in train_b}
    envs = {e: FileSplit(items(bs), read_sample, tasks) for e, bs in groups.items()}
    val = FileSplit(items(sorted(present["val"])), read_sample, tasks)
    test = FileSplit(items(sorted(present["test"])), read_sample, tasks)

    info = {
        "stand_in": False,
        "root": str(root),
        "split": cfg.split,
        "layout": (f"ROOT/<folder>/{NESTED}/<building>/" if nested else "ROOT/<folder>/<building>/"),
        "size": cfg.size or "as stored",
        "buildings": {"train": train_b, "val": sorted(present["val"]), "test": sorted(present["test"])},
        "envs": groups,
        "n_views": {**{e: len(s) for e, s in envs.items()}, "val": len(val), "test": len(test)},
        "missing_buildings": missing_b,
        "missing_label_files": {t: len(v) for t, v in missing_files.items()},
        "classes": CLASS_NAMES,
        "ignore_index": IGNORE,
        "units": {
            "depth_zbuffer": f"metres (value/512); NaN where value >= {cfg.depth_invalid_from:d}",
            "normal": "unit vectors (value/127.5 - 1, renormalised)",
            "keypoints2d": "value/65535",
            "edge_texture": "value/65535",
        },
    }
    return MTLData("taskonomy", [TASKS[t] for t in tasks], envs, val, test, info)


# ----------------------------------------------------------------------------------------------------------------
# Fixture
# ----------------------------------------------------------------------------------------------------------------

FIXTURE_DEPTH_PIXEL = ((-1, -1), 1024)  # written at this pixel of every depth file: 1024 / 512 = 2.0 m
FIXTURE_KEYPOINT_PIXEL = ((0, 0), 65535)  # keypoints2d: 1.0
FIXTURE_EDGE_PIXEL = ((0, 0), 32768)  # edge_texture: 32768 / 65535


def fixture_buildings(split: str = "taskgrouping", n_train: int = 4, n_val: int = 2, n_test: int = 2) -> list[str]:
    """The first buildings of each list of a split (the fixture's default)."""
    lists = split_lists(split)
    return lists["train"][:n_train] + lists["val"][:n_val] + lists["test"][:n_test]


def write_fixture(
    dir,
    buildings: Sequence[str] | None = None,
    views_per_building: int = 3,
    size: int = 32,
    seed: int = 0,
    leave_out: str | None = None,
    nested: bool = False,
) -> Path:
    """Write a tiny Taskonomy in the release's layout under `dir` and return `dir`.

    Per view (point_<i // 2>_view_<i % 2>): random rgb; segment values 0..17 in 4x4 blocks with the top-left
    block 0 ("uncertain"); depth 512..8000 with the top quarter of the rows at 65535 (no hit) and
    FIXTURE_DEPTH_PIXEL; random unit normals (grey 128 where depth is invalid); sparse keypoints and random edges
    with FIXTURE_KEYPOINT_PIXEL / FIXTURE_EDGE_PIXEL. `leave_out` (a task) omits that task's file of the first view
    of the first building. `nested` writes ROOT/<folder>/taskonomy/<building>/ (omnidata).
    """
    from PIL import Image

    if size < 8 or size % 4:
        raise ValueError(f"fixture size must be a multiple of 4 and >= 8, got {size}")
    if leave_out is not None and leave_out not in TASK_NAMES:
        raise ValueError(f"leave_out must be one of {TASK_NAMES}, got {leave_out!r}")
    root = Path(dir)
    buildings = list(buildings) if buildings is not None else fixture_buildings()
    rng = np.random.default_rng(seed)
    s, q = size, size // 4
    for bi, b in enumerate(buildings):
        dirs = {f: _folder(root, NESTED if nested else "", f, b) for f in ("rgb", *TASK_NAMES)}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for i in range(views_per_building):
            view = f"point_{i // 2}_view_{i % 2}"
            rgb = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
            seg = np.kron(rng.integers(0, N_CLASSES + 1, (4, 4)), np.ones((q, q), np.int64)).astype(np.uint8)
            seg[:q, :q] = 0
            depth = rng.integers(512, 8000, (s, s)).astype(np.uint16)
            depth[:q] = DEPTH_NO_HIT
            (r, c), v = FIXTURE_DEPTH_PIXEL
            depth[r, c] = v
            n = rng.normal(size=(s, s, 3))
            n[..., 2] = np.abs(n[..., 2]) + 0.5
            n /= np.linalg.norm(n, axis=-1, keepdims=True)
            normal = np.clip(np.round((n + 1.0) * 127.5), 0, 255).astype(np.uint8)
            normal[depth == DEPTH_NO_HIT] = 128
            keyp = np.where(rng.random((s, s)) < 0.05, rng.integers(1, 65536, (s, s)), 0).astype(np.uint16)
            (r, c), v = FIXTURE_KEYPOINT_PIXEL
            keyp[r, c] = v
            edge = rng.integers(0, 4096, (s, s)).astype(np.uint16)
            (r, c), v = FIXTURE_EDGE_PIXEL
            edge[r, c] = v
            arrays = {
                "rgb": rgb,
                "segment_semantic": seg,
                "depth_zbuffer": depth,
                "normal": normal,
                "keypoints2d": keyp,
                "edge_texture": edge,
            }
            for folder, a in arrays.items():
                if folder == leave_out and bi == 0 and i == 0:
                    continue
                Image.fromarray(a).save(dirs[folder] / f"{view}_domain_{DOMAINS[folder][0]}.png")
    return root


def available(root: str = "") -> bool:
    """True if `root` (default: $MTCRL_DATA/taskonomy or data/cache/taskonomy) holds an `rgb/` folder with at
    least one building: what notebook 03 checks to choose the real data over the synthetic stand-in."""
    rgb = resolve_root(root) / "rgb"
    return rgb.is_dir() and any(p.is_dir() for p in rgb.iterdir())
