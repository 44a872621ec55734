"""CityScapes (Cordts et al. 2016): 7-category segmentation and inverse depth (disparity), split by city.

The data cannot be downloaded from our machines; this module reads a copy that a user brings, in either of two
layouts (data.layout), and `write_fixture` writes a tiny dataset in each for the tests and for trying the pipeline.

layout = "mtan" (lorenmt/mtan's preprocessed copy; ROOT = data.root, else $MTCRL_DATA/cityscapes)::

    ROOT/{train,val}/image/{i}.npy     float (128, 256, 3), RGB in [0, 1]
    ROOT/{train,val}/label_7/{i}.npy   (128, 256) the 7 categories of CLASS_NAMES, -1 = ignore (void)
    ROOT/{train,val}/depth/{i}.npy     float (128, 256, 1) inverse depth (disparity), 0 = invalid
    ROOT/cities.csv                    optional: split,index,city (the manifest; MTAN's copy has no city names)

layout = "official" (the release of cityscapes-dataset.com, packages leftImg8bit_trainvaltest, gtFine_trainvaltest,
disparity_trainvaltest)::

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png   8-bit RGB, 1024 x 2048
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png    8-bit label ids 0..33
    ROOT/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png       16-bit p: disparity (p - 1) / 256 px,
                                                                            p = 0 invalid

Normalisation: image -> float32 (3, h, w) in [0, 1] (area-averaged from the .npy; bilinear, antialiased, from the
PNG); segmentation -> int64 (h, w): the 34 label ids map to their category (categoryId of the label table of the
`cityscapesscripts` package, cityscapesscripts.helpers.labels) minus 1, so flat 0, construction 1, object 2,
nature 3, sky 4, human 5, vehicle 6, and void (categoryId 0) -> -1 ignored; depth -> float32 (1, h, w) disparity,
NaN where invalid (0 in either layout). The official disparity is in pixels of the 2048-wide image; resized to
width w it is multiplied by w / 2048 (the disparity of the resized image, in its own pixels). Labels are resized
nearest-neighbour; h = data.size (the output height; 0 = as stored), the width following the 1:2 aspect.

Splits are by city (cityscapes_splits/cities.txt, docs/DECISIONS.md): test = the official val cities, val =
three held-out official training cities, training environments = the other training cities grouped by region.
The official layout always has the city; the MTAN layout has it only with ROOT/cities.csv, and without it falls
back (with a warning) to MTAN's split: train/ dealt at random into data.n_envs environments, val/ cut at random
into disjoint val and test halves.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data import mtan
from mtcrl_lite.data.base import FileSplit, MTLData
from mtcrl_lite.data.sources import DataMissingError, open_image
from mtcrl_lite.paths import data_root

CLASS_NAMES = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")  # categoryId 1..7
N_CLASSES = len(CLASS_NAMES)
STORED_HW = {"mtan": (128, 256), "official": (1024, 2048)}
TASKS = {
    "segmentation": Task("segmentation", "segmentation", N_CLASSES, "miou"),
    "depth": Task("depth", "depth", 1, "abs_err"),
}
TASK_NAMES = tuple(TASKS)
TASK_SPECS = {"segmentation": ("label_7", "segmentation", N_CLASSES), "depth": ("depth", "depth", 0)}
LAYOUTS = ("mtan", "official")
GROUPS = Path(__file__).with_name("cityscapes_splits") / "cities.txt"
MANIFEST = "cities.csv"
OFFICIAL_SPLITS = ("train", "val", "test")
SUFFIX = {"leftImg8bit": "_leftImg8bit.png", "gtFine": "_gtFine_labelIds.png", "disparity": "_disparity.png"}
LABEL_FOLDER = {"segmentation": "gtFine", "depth": "disparity"}
CITYSCAPESSCRIPTS = "cityscapesscripts==2.3.0"


@dataclass
class CityScapesConfig:
    """Data parameters of CityScapes (all overridable with --set data.KEY=VALUE); see the module docstring."""

    root: str = ""  # "" = $MTCRL_DATA/cityscapes (else data/cache/cityscapes)
    layout: str = "mtan"  # "mtan" (preprocessed .npy) or "official" (the release's PNGs)
    tasks: tuple[str, ...] = TASK_NAMES
    size: int = 32  # output height (width = 2x); 0 = as stored (128 mtan, 1024 official)
    max_items: int = 0  # first N samples of each MTAN folder / official city; 0 = all
    n_envs: int = 3  # environments of the random fallback split (MTAN layout, no manifest)
    data_seed: int = 0  # seed of the random fallback split
    groups: str = ""  # city group list ("" = cityscapes_splits/cities.txt)
    missing_labels: str = "error"  # a missing label file: "error" or "invalid" (that task unlabelled)


def label_to_category() -> np.ndarray:
    """(256,) int64 lookup: label id -> category - 1 (void and ids outside the table -> -1), from the label table
    of cityscapesscripts (pinned; installed with --no-deps: helpers.labels needs the standard library only)."""
    try:
        from cityscapesscripts.helpers.labels import labels
    except ImportError as e:
        raise ImportError(
            f"cityscapes: the label table comes from the `cityscapesscripts` package ({e}); install "
            f"the pinned version with: pip install --no-deps {CITYSCAPESSCRIPTS} "
            f"(requirements-nodeps.txt; `make venv` does it)"
        ) from None
    lut = np.full(256, -1, np.int64)
    for lab in labels:
        if 0 <= lab.id < 256:
            lut[lab.id] = lab.categoryId - 1  # void (categoryId 0) -> -1
    return lut


def resolve_root(root: str = "") -> Path:
    return Path(root) if root else data_root() / "cityscapes"


def layout_text(root: Path, layout: str) -> str:
    if layout == "mtan":
        return (
            "\n".join(f"    {root}/{{train,val}}/{f}/{{i}}.npy" for f in ("image", "label_7", "depth"))
            + f"\n    {root}/{MANIFEST}   (optional: split,index,city; splits by city)"
        )
    return "\n".join(f"    {root}/{f}/<split>/<city>/<city>_<seq>_<frame>{s}" for f, s in SUFFIX.items())


def official_text(layout: str) -> str:
    other = "official" if layout == "mtan" else "mtan"
    return (
        "The data cannot be downloaded from this machine. The official release is at "
        "https://www.cityscapes-dataset.com (registration; packages leftImg8bit_trainvaltest.zip, "
        "gtFine_trainvaltest.zip, disparity_trainvaltest.zip); MTAN's preprocessed copy (128x256, 7 classes) is "
        f"linked from https://github.com/lorenmt/mtan. Point data.root (or $MTCRL_DATA, which holds "
        f"cityscapes/) at the copy, or set data.layout={other} if that is the layout you have. To try the "
        f"pipeline without the data: python -m mtcrl_lite.data fixture cityscapes DIR [--layout official]."
    )


# ----------------------------------------------------------------------------------------------------------------
# Official layout


@dataclass(frozen=True)
class OfficialSpec:
    root: str
    tasks: tuple[str, ...]
    hw: tuple[int, int]
    lut: tuple[int, ...]  # label id -> category - 1
    missing_labels: str = "error"


@dataclass(frozen=True, slots=True)
class OfficialItem:
    spec: OfficialSpec
    split: str  # the release's folder (train, val)
    city: str
    stem: str  # <city>_<seq>_<frame>

    def path(self, folder: str) -> Path:
        return Path(self.spec.root) / folder / self.split / self.city / f"{self.stem}{SUFFIX[folder]}"


def _open(path: Path):
    return open_image("cityscapes", path)


def decode_labels(raw: np.ndarray, lut: np.ndarray, path="gtFine") -> np.ndarray:
    """Label ids (H, W) -> categories - 1 (int64, -1 = void); an id above 255 is an error naming the file."""
    if raw.size and (raw.min() < 0 or raw.max() > 255):
        raise ValueError(f"cityscapes: {path} holds label ids outside 0..255")
    return lut[raw.astype(np.int64)]


def decode_disparity(raw: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """16-bit p -> float32 disparity (p - 1) / 256 * scale, NaN where p = 0."""
    d = (raw.astype(np.float32) - 1.0) / np.float32(256.0) * np.float32(scale)
    d[raw == 0] = np.nan
    return d


def read_official(item: OfficialItem) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from PIL import Image

    from mtcrl_lite.data.taskonomy import resize_nearest

    spec = item.spec
    im = _open(item.path("leftImg8bit")).convert("RGB")
    stored_w = im.size[0]
    h, w = spec.hw
    if im.size != (w, h):
        im = im.resize((w, h), Image.BILINEAR)
    x = np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
    y = {}
    for t in spec.tasks:
        p = item.path(LABEL_FOLDER[t])
        if not p.exists():
            if spec.missing_labels == "error":
                raise DataMissingError(
                    f"cityscapes: label file {p} is missing (task {t}, city {item.city}); restore "
                    f"it, or set data.missing_labels=invalid"
                )
            y[t] = mtan.invalid_label(TASKS[t].kind, spec.hw)
            continue
        raw = np.asarray(_open(p)).astype(np.int64)
        if raw.ndim != 2:
            raise ValueError(f"cityscapes: {p} should be a one-channel PNG, got shape {raw.shape}")
        if t == "segmentation":
            y[t] = resize_nearest(decode_labels(raw, np.asarray(spec.lut), p), spec.hw)
        else:
            y[t] = decode_disparity(resize_nearest(raw, spec.hw), w / stored_w)[None]
    return x, y


def _stems(d: Path, limit: int) -> list[str]:
    try:
        names = sorted(f[: -len(SUFFIX["leftImg8bit"])] for f in os.listdir(d) if f.endswith(SUFFIX["leftImg8bit"]))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return names[:limit] if limit > 0 else names


def build_official(cfg: CityScapesConfig, root: Path, tasks: tuple[str, ...]) -> MTLData:
    groups = mtan.read_groups(Path(cfg.groups or GROUPS))
    cities = [c for v in groups["envs"].values() for c in v] + groups["val"] + groups["test"]
    found: dict[str, tuple[str, list[str]]] = {}
    for city in cities:
        for split in OFFICIAL_SPLITS:
            stems = _stems(root / "leftImg8bit" / split / city, cfg.max_items)
            if stems:
                found[city] = (split, stems)
                break
    parts = {
        "envs": {e: [c for c in v if c in found] for e, v in groups["envs"].items()},
        "val": [c for c in groups["val"] if c in found],
        "test": [c for c in groups["test"] if c in found],
    }
    empty = [f"train/{e}" for e, v in parts["envs"].items() if not v] + [p for p in ("val", "test") if not parts[p]]
    if empty:
        reason = (
            f"no CityScapes images under {root}"
            if not found
            else f"no city of the {', '.join(empty)} line(s) of {cfg.groups or GROUPS} under {root}/leftImg8bit"
        )
        raise DataMissingError(
            f"cityscapes: {reason}.\nExpected the official layout (data.layout=official):\n"
            f"{layout_text(root, 'official')}\nwith the cities of {cfg.groups or GROUPS}.\n"
            f"{official_text('official')}"
        )
    lut = tuple(label_to_category().tolist())
    first_city = next(iter(found))
    probe = OfficialItem(
        OfficialSpec(str(root), tasks, (0, 0), lut), found[first_city][0], first_city, found[first_city][1][0]
    )
    w0, h0 = _open(probe.path("leftImg8bit")).size
    spec = OfficialSpec(str(root), tasks, mtan.out_hw((h0, w0), cfg.size), lut, cfg.missing_labels)
    items = {c: [OfficialItem(spec, s, c, stem) for stem in stems] for c, (s, stems) in found.items()}
    missing = [
        it.path(LABEL_FOLDER[t])
        for v in items.values()
        for it in v
        for t in tasks
        if not it.path(LABEL_FOLDER[t]).exists()
    ]
    if missing and cfg.missing_labels == "error":
        raise mtan.missing_files_error("cityscapes", missing, root)
    absent = sorted(set(cities) - set(found))
    if absent:
        warnings.warn(
            f"cityscapes: cities of the lists not under {root}/leftImg8bit: {absent}; using the others "
            f"(info['missing_cities'])",
            stacklevel=3,
        )

    def split_of(cs):
        return FileSplit([it for c in cs for it in items[c]], read_official, tasks)

    envs = {e: split_of(cs) for e, cs in parts["envs"].items()}
    val, test = split_of(parts["val"]), split_of(parts["test"])
    info = {
        "stand_in": False,
        "root": str(root),
        "layout": "official",
        "hw": spec.hw,
        "split_by": "city",
        "cities": {**{e: cs for e, cs in parts["envs"].items()}, "val": parts["val"], "test": parts["test"]},
        "missing_cities": absent,
        "missing_label_files": len(missing),
        "n_samples": {**{e: len(s) for e, s in envs.items()}, "val": len(val), "test": len(test)},
    }
    return MTLData("cityscapes", [TASKS[t] for t in tasks], envs, val, test, info)


def build_cityscapes(cfg: CityScapesConfig) -> MTLData:
    if cfg.layout not in LAYOUTS:
        raise ValueError(f"cityscapes: data.layout must be one of {LAYOUTS}, got {cfg.layout!r}")
    root = resolve_root(cfg.root)
    if cfg.layout == "mtan":
        c = CityScapesConfig(**{**vars(cfg), "root": str(root)})
        data = mtan.build_mtan(
            "cityscapes",
            c,
            TASKS,
            TASK_SPECS,
            MANIFEST,
            "city",
            Path(cfg.groups or GROUPS),
            layout_text(root, "mtan"),
            official_text("mtan"),
        )
    else:
        unknown = [t for t in cfg.tasks if t not in TASKS]
        if unknown or not cfg.tasks:
            raise ValueError(f"cityscapes: unknown or no tasks {list(cfg.tasks)}; valid: {TASK_NAMES}")
        if cfg.missing_labels not in mtan.MISSING_POLICIES:
            raise ValueError(
                f"cityscapes: missing_labels must be one of {mtan.MISSING_POLICIES}, got {cfg.missing_labels!r}"
            )
        data = build_official(cfg, root, tuple(t for t in TASK_NAMES if t in cfg.tasks))
    data.info.update(
        {
            "classes": CLASS_NAMES,
            "ignore_index": mtan.IGNORE,
            "units": {"depth": "inverse depth (disparity); NaN where the file holds 0"},
        }
    )
    return data


# ----------------------------------------------------------------------------------------------------------------
# Fixtures


def fixture_cities() -> list[str]:
    """The first city of each environment, validation and test line of the shipped lists."""
    g = mtan.read_groups(GROUPS)
    return [v[0] for v in g["envs"].values()] + [g["val"][0], g["test"][0]]


FIXTURE_DISPARITY_PIXEL = ((-1, -1), 2561)  # official fixture: p = 2561 -> (2561 - 1) / 256 = 10 px


def write_official_fixture(
    root: Path, hw: tuple[int, int], per_city: int, rng: np.random.Generator, leave_out: str | None = None
) -> None:
    """Per city of fixture_cities() (test cities under val/, the others under train/): random RGB; label ids
    0..33 in 4x4 blocks with the top-left block 0 (unlabeled, void); disparity p in [257, 30000) with the top
    quarter of the rows 0 (invalid) and FIXTURE_DISPARITY_PIXEL. `leave_out` (gtFine or disparity) omits that
    file of the first image of the first city."""
    from PIL import Image

    h, w = hw
    test = set(mtan.read_groups(GROUPS)["test"])
    for ci, city in enumerate(fixture_cities()):
        split = "val" if city in test else "train"
        for k in range(per_city):
            stem = f"{city}_{k:06d}_000019"
            seg = np.kron(rng.integers(0, 34, (4, 4)), np.ones((h // 4, w // 4), np.int64)).astype(np.uint8)
            seg[: h // 4, : w // 4] = 0
            disp = rng.integers(257, 30000, (h, w)).astype(np.uint16)
            disp[: h // 4] = 0
            (r, c), v = FIXTURE_DISPARITY_PIXEL
            disp[r, c] = v
            arrays = {"leftImg8bit": rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "gtFine": seg, "disparity": disp}
            for folder, a in arrays.items():
                if folder == leave_out and ci == 0 and k == 0:
                    continue
                d = root / folder / split / city
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(a).save(d / f"{stem}{SUFFIX[folder]}")


def write_fixture(
    dir,
    layout: str = "mtan",
    n_train: int = 8,
    n_val: int = 6,
    per_city: int = 2,
    hw: tuple[int, int] = (8, 16),
    seed: int = 0,
    manifest: bool = True,
    leave_out: str | None = None,
) -> Path:
    """A tiny CityScapes under `dir` in `layout`. mtan: n_train / n_val samples (mtan.write_mtan_fixture), with
    `manifest` a cities.csv dealing fixture_cities() in turn; `leave_out` label_7 or depth omits train sample 0's
    file. official: `per_city` images per city (write_official_fixture); `leave_out` gtFine or disparity."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if hw[0] % 4 or hw[1] % 4 or min(hw) < 4:
        raise ValueError(f"fixture size must be multiples of 4, got {hw}")
    root = Path(dir)
    rng = np.random.default_rng(seed)
    if layout == "official":
        write_official_fixture(root, hw, per_city, rng, leave_out)
        return root
    n = {"train": n_train, "val": n_val}
    mtan.write_mtan_fixture(root, hw, n, {"label_7": "segmentation", "depth": "depth"}, N_CLASSES, rng, leave_out)
    if manifest:
        mtan.write_manifest(root / MANIFEST, "city", n, fixture_cities())
    return root


def available(root: str = "", layout: str = "mtan") -> bool:
    """True if ROOT holds data of `layout`: an image .npy under train/image, or a city folder under
    leftImg8bit/train."""
    r = resolve_root(root)
    if layout == "mtan":
        return bool(mtan.npy_indices(r / "train" / "image"))
    d = r / "leftImg8bit" / "train"
    return d.is_dir() and any(p.is_dir() for p in d.iterdir())
