"""Dataset registry: name -> (config dataclass, builder returning MTLData)."""

from __future__ import annotations

from mtcrl_lite.data.base import ArraySplit, ConcatSplit, FileSplit, MTLData, Split
from mtcrl_lite.data.cityscapes import CityScapesConfig, build_cityscapes
from mtcrl_lite.data.fashion import build_fashionmnist, build_multifashion
from mtcrl_lite.data.mnist import DebugConfig, MultiMNISTConfig, build_debug, build_multimnist
from mtcrl_lite.data.movielens import MovieLensConfig, build_movielens
from mtcrl_lite.data.nyuv2 import NYUv2Config, build_nyuv2
from mtcrl_lite.data.scenes import ScenesConfig, build_scenes
from mtcrl_lite.data.sem import MultiSEMConfig, build_multisem
from mtcrl_lite.data.sources import DataMissingError, fetch
from mtcrl_lite.data.taskonomy import TaskonomyConfig, build_taskonomy

DATASETS = {
    "multimnist": (MultiMNISTConfig, build_multimnist),
    "debug": (DebugConfig, build_debug),
    "multifashion": (MultiMNISTConfig, build_multifashion),  # Multi-MNIST's generator on Fashion-MNIST items
    "fashionmnist": (MultiMNISTConfig, build_fashionmnist),  # left: a Fashion-MNIST item, right: an MNIST digit
    "multisem": (MultiSEMConfig, build_multisem),
    "movielens": (MovieLensConfig, build_movielens),
    "taskonomy": (TaskonomyConfig, build_taskonomy),  # real layout on disk (data.root); no download here
    "nyuv2": (NYUv2Config, build_nyuv2),  # MTAN .npy layout (data.root); no download here
    "cityscapes": (CityScapesConfig, build_cityscapes),  # MTAN .npy or official PNG layout (data.layout)
    "scenes": (ScenesConfig, build_scenes),  # synthetic dense stand-in (marked † in every table)
}


def build_dataset(name: str, cfg) -> MTLData:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; valid: {sorted(DATASETS)}")
    return DATASETS[name][1](cfg)


__all__ = [
    "DATASETS",
    "MTLData",
    "Split",
    "ArraySplit",
    "FileSplit",
    "ConcatSplit",
    "DataMissingError",
    "build_dataset",
    "fetch",
]
