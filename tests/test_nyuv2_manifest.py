"""The scene-type manifest written from (stand-ins of) the official NYUv2 files: frame order, the split it gives
the loader, and clear errors for the wrong files or a copy whose size does not match the split."""

import csv

import numpy as np
import pytest

from mtcrl_lite.data import mtan
from mtcrl_lite.data import nyuv2 as N
from mtcrl_lite.data import nyuv2_manifest as M
from mtcrl_lite.data.__main__ import main as data_main

# 16 frames; the fixture's MTAN copy has 8 train and 6 val images (frames 14, 15 are in neither split)
SCENES = [
    "bedroom",
    "kitchen",
    "office",
    "living_room",
    "bathroom",
    "cafe",
    "nursery",
    "dining_room",
    "classroom",
    "foyer",
    "laundry_room",
    "study",
    "kids_room",
    "basement",
    "bedroom",
    "kitchen",
]
TRAIN = [12, 0, 1, 3, 6, 7, 9, 13]  # 0-based frames, deliberately out of order
TEST = [2, 4, 5, 8, 10, 11]


@pytest.fixture
def official(tmp_path):
    return M.write_official_fixture(tmp_path / "official", SCENES, TRAIN, TEST)


def test_reads_cell_strings_and_one_based_split(official):
    labeled, splits = official
    assert M.read_scene_types(labeled) == SCENES
    train, test = M.read_official_split(splits)
    assert train.tolist() == TRAIN and test.tolist() == TEST


def test_rows_follow_the_split_order():
    rows = M.manifest_rows(SCENES, TRAIN, TEST)
    assert rows[:2] == [("train", 0, "kids_room"), ("train", 1, "bedroom")]
    assert rows[8] == ("val", 0, "office") and len(rows) == 14
    with pytest.raises(ValueError, match=r"frames \[17\] \(1-based\) outside 1..16"):
        M.manifest_rows(SCENES, TRAIN, [16])


def test_written_manifest_splits_the_loader_by_scene_type(official, tmp_path):
    root = N.write_fixture(tmp_path / "nyu", hw=(12, 16), manifest=False)
    assert data_main(["nyuv2-manifest", str(official[0]), str(official[1]), str(root)]) == 0
    with open(root / N.MANIFEST) as f:
        assert next(csv.reader(f)) == ["split", "index", "scene_type"]
    table = mtan.read_manifest(root / N.MANIFEST, "scene_type")
    assert table[("train", 0)] == "kids_room" and table[("val", 5)] == "study"
    data = N.build_nyuv2(N.NYUv2Config(root=str(root), size=0))
    assert data.info["split_by"] == "scene_type"
    sleeping = sorted(it.index for it in data.train_envs["sleeping"].items if it.split == "train")
    assert sleeping == [0, 1, 4]  # kids_room, bedroom, nursery
    assert sorted((it.split, it.index) for it in data.test.items) == [
        ("val", 0),
        ("val", 2),
        ("val", 3),
        ("val", 5),
    ]  # office, cafe, classroom, study


def test_wrong_files_and_a_copy_of_another_size_are_clear_errors(official, tmp_path):
    labeled, splits = official
    with pytest.raises(FileNotFoundError, match="does not exist"):
        M.read_scene_types(tmp_path / "missing.mat")
    with pytest.raises(ValueError, match="not an HDF5"):
        M.read_scene_types(splits)  # the v5 splits file where the labelled set belongs
    with pytest.raises(ValueError, match="no trainNdxs or testNdxs"):
        from scipy.io import savemat

        savemat(tmp_path / "x.mat", {"other": np.zeros(2)})
        M.read_official_split(tmp_path / "x.mat")
    root = N.write_fixture(tmp_path / "small", hw=(12, 16), n_train=4, manifest=False)
    with pytest.raises(ValueError, match="holds 4 images but the split gives train 8"):
        M.write_manifest_from_official(labeled, splits, root)
    assert not (root / N.MANIFEST).exists()
