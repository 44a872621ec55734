"""Dataset registry: name -> (config dataclass, builder returning MTLData), read off the catalogue (one row per
dataset: `mtcrl_lite.data.catalogue`)."""

from __future__ import annotations

from mtcrl_lite.data.base import ArraySplit, ConcatSplit, FileSplit, MTLData, Split
from mtcrl_lite.data.catalogue import CATALOGUE
from mtcrl_lite.data.sources import DataMissingError, fetch

DATASETS = {name: (e.config, e.build) for name, e in CATALOGUE.items()}


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
