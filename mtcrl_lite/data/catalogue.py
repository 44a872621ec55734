"""The catalogue: one row per dataset, everything the rest of the package needs to know about it.

Adding a dataset = its module (a config dataclass and a builder returning MTLData) plus one row here. The row says
how the dataset is printed, which column of the paper's main table it is (if any), the results folder its runs
share (the tables, the record and the notebooks read them there), what `python -m mtcrl_lite.data fetch` must get
for it, and for a real dense dataset that cannot be had here, the style of the synthetic stand-in († everywhere)
that replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtcrl_lite.data.cityscapes import CityScapesConfig, build_cityscapes
from mtcrl_lite.data.fashion import build_fashionmnist, build_multifashion
from mtcrl_lite.data.mnist import DebugConfig, MultiMNISTConfig, build_debug, build_multimnist
from mtcrl_lite.data.movielens import MovieLensConfig, build_movielens
from mtcrl_lite.data.nyuv2 import NYUv2Config, build_nyuv2
from mtcrl_lite.data.scenes import ScenesConfig, build_scenes
from mtcrl_lite.data.sem import MultiSEMConfig, build_multisem
from mtcrl_lite.data.taskonomy import TaskonomyConfig, build_taskonomy


@dataclass(frozen=True)
class Entry:
    name: str  # registry name (config.dataset)
    config: type  # its config dataclass (the `data` section)
    build: object  # (config) -> MTLData
    label: str  # printed name
    folder: str = ""  # the results folder its runs share ("" for none)
    fetch: tuple[str, ...] = ()  # what `data fetch` gets for it (mtcrl_lite.data.sources)
    column: str | None = None  # its column of the paper's main table, in the paper's spelling
    stand_in_style: str = ""  # a real dense dataset: the scenes style of its synthetic stand-in
    synthetic_stand_in: bool = False  # the stand-in itself: marked † in every table


# the paper's columns first, in its table's order (analysis.tables.PAPER's values follow it)
CATALOGUE = {
    e.name: e
    for e in (
        Entry("multimnist", MultiMNISTConfig, build_multimnist, "Multi-MNIST", "06_multimnist", ("mnist",),
              "Multi-MNIST"),
        Entry("movielens", MovieLensConfig, build_movielens, "MovieLens", "07_movielens", ("movielens",), "MovieLens"),
        Entry("taskonomy", TaskonomyConfig, build_taskonomy, "Taskonomy", "03_taskonomy", (), "Taskonomy",
              "taskonomy"),  # real layout on disk (data.root); no download here
        Entry("cityscapes", CityScapesConfig, build_cityscapes, "CityScapes", "04_cityscapes", (), "CityScape",
              "cityscapes"),  # MTAN .npy or official PNG layout (data.layout)
        Entry("nyuv2", NYUv2Config, build_nyuv2, "NYUv2", "05_nyuv2", (), "NYUv2", "nyuv2"),  # MTAN .npy layout
        Entry("multifashion", MultiMNISTConfig, build_multifashion, "Multi-Fashion", "10_beyond_the_paper/multifashion",
              ("fashion",)),  # Multi-MNIST's generator on Fashion-MNIST items
        Entry("fashionmnist", MultiMNISTConfig, build_fashionmnist, "Fashion+MNIST", "10_beyond_the_paper/fashionmnist",
              ("fashion", "mnist")),  # left: a Fashion-MNIST item, right: an MNIST digit
        Entry("multisem", MultiSEMConfig, build_multisem, "Multi-SEM"),
        Entry("scenes", ScenesConfig, build_scenes, "scenes †", synthetic_stand_in=True),  # the dense stand-in
        Entry("debug", DebugConfig, build_debug, "debug"),
    )
}  # fmt: skip

PAPER_COLUMNS = {e.column: e for e in CATALOGUE.values() if e.column}  # paper column -> its dataset's row
STAND_INS = tuple(e.name for e in CATALOGUE.values() if e.synthetic_stand_in)
