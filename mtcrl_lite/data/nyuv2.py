"""NYUv2 (Silberman et al. 2012) in the MTAN preprocessed layout: 13-class segmentation, depth, surface normals.

The data cannot be downloaded from our machines; this module reads a copy that a user brings, and `write_fixture`
writes a tiny dataset in exactly that layout for the tests and for trying the pipeline.

Layout (ROOT = data.root, else $MTCRL_DATA/nyuv2, else data/cache/nyuv2), as lorenmt/mtan's loader reads it::

    ROOT/{train,val}/image/{i}.npy    float (288, 384, 3), RGB in [0, 1]
    ROOT/{train,val}/label/{i}.npy    (288, 384) the 13 classes of CLASS_NAMES, -1 = ignore (unlabelled)
    ROOT/{train,val}/depth/{i}.npy    float (288, 384, 1) metres, 0 = no measurement
    ROOT/{train,val}/normal/{i}.npy   float (288, 384, 3) unit surface normals, (0, 0, 0) = none
    ROOT/scene_types.csv              optional: split,index,scene_type (the manifest, below)

(MTAN's train/ holds the 795 training images of the official split, val/ the 654 test images.)

Normalisation: image -> float32 (3, h, w), area-averaged when resized; label -> int64 (h, w), -1 ignored;
depth -> float32 (1, h, w) metres, NaN where the file holds 0 (tasks.py's invalid pixel); normal -> float32
(3, h, w) renormalised unit vectors, NaN where the vector is shorter than 0.5 (the 0-vectors). Labels are resized
nearest-neighbour. h = data.size (the output height; 0 = 288 as stored), the width following the 3:4 aspect.

Splits. With ROOT/scene_types.csv (the scene type of every sample, e.g. written from the `sceneTypes` field of the
official nyu_depth_v2_labeled.mat in the order MTAN took the images: `python -m mtcrl_lite.data nyuv2-manifest`,
nyuv2_manifest.py) both folders are pooled and split by scene
type with the lists of nyuv2_splits/scene_types.txt: training environments = groups of home rooms, validation =
other home rooms, test = work and public spaces (docs/DECISIONS.md). Without it (a warning says so) the split is
MTAN's: train/ dealt at random into data.n_envs environments, val/ cut at random into disjoint val and test halves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data import mtan
from mtcrl_lite.data.base import MTLData
from mtcrl_lite.paths import data_root

# MTAN's 13 classes (the 13-class mapping of Couprie et al. 2013), in label order
CLASS_NAMES = (
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "picture",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
)
N_CLASSES = len(CLASS_NAMES)
STORED_HW = (288, 384)
TASKS = {
    "segmentation": Task("segmentation", "segmentation", N_CLASSES, "miou"),
    "depth": Task("depth", "depth", 1, "abs_err"),
    "normal": Task("normal", "normal", 3, "mean_angle"),
}
TASK_NAMES = tuple(TASKS)
TASK_SPECS = {
    "segmentation": ("label", "segmentation", N_CLASSES),
    "depth": ("depth", "depth", 0),
    "normal": ("normal", "normal", 0),
}
GROUPS = Path(__file__).with_name("nyuv2_splits") / "scene_types.txt"
MANIFEST = "scene_types.csv"


@dataclass
class NYUv2Config:
    """Data parameters of NYUv2 (all overridable with --set data.KEY=VALUE); see the module docstring."""

    root: str = ""  # "" = $MTCRL_DATA/nyuv2 (else data/cache/nyuv2)
    tasks: tuple[str, ...] = TASK_NAMES
    size: int = 72  # output height (width = 4/3 of it); 0 = as stored (288 x 384)
    max_items: int = 0  # first N samples of each MTAN folder (train/, val/); 0 = all
    n_envs: int = 3  # environments of the random fallback split (no manifest)
    data_seed: int = 0  # seed of the random fallback split
    groups: str = ""  # scene-type group list ("" = nyuv2_splits/scene_types.txt)
    missing_labels: str = "error"  # a missing label file: "error" or "invalid" (that task unlabelled)


def resolve_root(root: str = "") -> Path:
    return Path(root) if root else data_root() / "nyuv2"


def layout_text(root: Path) -> str:
    return (
        "\n".join(f"    {root}/{{train,val}}/{f}/{{i}}.npy" for f in ("image", "label", "depth", "normal"))
        + f"\n    {root}/{MANIFEST}   (optional: split,index,scene_type; splits by scene type)"
    )


OFFICIAL = (
    "The data cannot be downloaded from this machine. The preprocessed copy is the one linked from "
    "https://github.com/lorenmt/mtan (NYUv2, 13 classes, 288x384); the official release is "
    "https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html (nyu_depth_v2_labeled.mat and splits.mat give "
    "the manifest: python -m mtcrl_lite.data nyuv2-manifest LABELED.mat SPLITS.mat ROOT). Point data.root "
    "(or $MTCRL_DATA, which holds nyuv2/) at the copy. To try the pipeline without the data: "
    "python -m mtcrl_lite.data fixture nyuv2 DIR, then --set data.root=DIR."
)


def build_nyuv2(cfg: NYUv2Config) -> MTLData:
    root = resolve_root(cfg.root)
    c = NYUv2Config(**{**vars(cfg), "root": str(root)})
    data = mtan.build_mtan(
        "nyuv2", c, TASKS, TASK_SPECS, MANIFEST, "scene_type", Path(cfg.groups or GROUPS), layout_text(root), OFFICIAL
    )
    data.info.update(
        {
            "classes": CLASS_NAMES,
            "units": {
                "depth": "metres; NaN where the file holds 0",
                "normal": "unit vectors; NaN where the file holds 0",
            },
        }
    )
    return data


def fixture_scene_types() -> list[str]:
    """One scene type per environment, validation and test line of the shipped lists (the fixture's manifest)."""
    g = mtan.read_groups(GROUPS)
    return [v[0] for v in g["envs"].values()] + [g["val"][0], g["test"][0]]


def write_fixture(
    dir,
    n_train: int = 8,
    n_val: int = 6,
    hw: tuple[int, int] = (12, 16),
    seed: int = 0,
    manifest: bool = True,
    leave_out: str | None = None,
) -> Path:
    """A tiny NYUv2 in the MTAN layout under `dir` (see mtan.write_mtan_fixture for the values: an ignore block,
    invalid depth and normals in the top quarter of the rows); with `manifest`, scene_types.csv dealing
    fixture_scene_types() in turn. `leave_out` (label, depth or normal) omits that file of train sample 0."""
    if hw[0] % 4 or hw[1] % 4 or min(hw) < 4:
        raise ValueError(f"fixture size must be multiples of 4, got {hw}")
    root = Path(dir)
    n = {"train": n_train, "val": n_val}
    mtan.write_mtan_fixture(
        root,
        hw,
        n,
        {"label": "segmentation", "depth": "depth", "normal": "normal"},
        N_CLASSES,
        np.random.default_rng(seed),
        leave_out,
    )
    if manifest:
        mtan.write_manifest(root / MANIFEST, "scene_type", n, fixture_scene_types())
    return root


def available(root: str = "") -> bool:
    """True if ROOT/train/image holds at least one .npy file (what a notebook checks before the stand-in)."""
    return bool(mtan.npy_indices(resolve_root(root) / "train" / "image"))
