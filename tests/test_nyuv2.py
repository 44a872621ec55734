"""NYUv2 loader (MTAN layout): values, ignore, invalid depth and normals, the scene-type split and its fallback,
missing files, the empty root, the fixture CLI and an end-to-end training run."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from mtcrl_lite.data import DataMissingError, mtan
from mtcrl_lite.data import nyuv2 as N
from mtcrl_lite.data.__main__ import main as data_main

HW = (12, 16)


def build(root, **kw):
    return N.build_nyuv2(N.NYUv2Config(root=str(root), **kw))


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return N.write_fixture(tmp_path_factory.mktemp("nyuv2"), hw=HW)


def test_values_ignore_and_invalid_pixels_read_back(fx):
    data = build(fx, size=0)
    assert data.input_shape == (3, *HW) and [t.name for t in data.tasks] == ["segmentation", "depth", "normal"]
    assert data.tasks[0].n_out == 13
    item = data.val.items[0]
    x, y = N.mtan.read_mtan(item)
    raw = {f: np.load(fx / item.split / f / f"{item.index}.npy") for f in ("image", "label", "depth", "normal")}
    np.testing.assert_array_equal(x, np.moveaxis(raw["image"], -1, 0))  # HxWx3 -> 3xHxW, unchanged
    np.testing.assert_array_equal(y["segmentation"], raw["label"].astype(np.int64))
    assert (y["segmentation"][:3, :4] == -1).all() and y["segmentation"].dtype == np.int64
    d = y["depth"][0]
    assert np.isnan(d[:3]).all() and np.array_equal(d[3:], raw["depth"][3:, :, 0])  # 0 -> NaN, metres kept
    n = y["normal"]
    assert n.shape == (3, *HW) and np.isnan(n[:, :3]).all()
    np.testing.assert_allclose(np.linalg.norm(n[:, 3:], axis=0), 1.0, atol=1e-6)


def test_resizing_keeps_the_aspect_and_labels_stay_integral(fx):
    data = build(fx, size=6)
    x, y = data.val[[0, 1]]
    assert x.shape == (2, 3, 6, 8) and y["segmentation"].shape == (2, 6, 8) and y["normal"].shape == (2, 3, 6, 8)
    assert set(np.unique(y["segmentation"].numpy())) <= set(range(-1, 13))
    assert mtan.out_hw((288, 384), 72) == (72, 96) and mtan.out_hw((288, 384), 0) == (288, 384)


def test_split_by_scene_type_is_disjoint_and_follows_the_lists(fx):
    data = build(fx, size=0)
    groups = mtan.read_groups(N.GROUPS)
    table = mtan.read_manifest(fx / N.MANIFEST, "scene_type")
    assert set(data.train_envs) == set(groups["envs"]) == {"sleeping", "cooking", "living"}
    seen = {}
    for name, split in {**data.train_envs, "val": data.val, "test": data.test}.items():
        allowed = groups["envs"].get(name) or groups[name]
        for it in split.items:
            assert table[(it.split, it.index)] in allowed
            assert (it.split, it.index) not in seen
            seen[(it.split, it.index)] = name
    assert len(seen) == 14 and data.info["split_by"] == "scene_type"


def test_shipped_scene_type_lists_are_disjoint():
    g = mtan.read_groups(N.GROUPS)
    names = [n for v in g["envs"].values() for n in v] + g["val"] + g["test"]
    assert len(names) == len(set(names)) and "bedroom" in g["envs"]["sleeping"] and "office" in g["test"]


def test_without_manifest_warns_and_falls_back_to_mtan_split(tmp_path):
    root = N.write_fixture(tmp_path / "nm", hw=HW, manifest=False)
    with pytest.warns(UserWarning, match="NOT by scene_type"):
        data = build(root, size=0, n_envs=2)
    assert data.info["split_by"].startswith("random")
    train = [(it.split, it.index) for s in data.train_envs.values() for it in s.items]
    val = [(it.split, it.index) for it in data.val.items]
    test = [(it.split, it.index) for it in data.test.items]
    assert sorted(train) == [("train", i) for i in range(8)] and len(data.train_envs) == 2
    assert not set(val) & set(test) and sorted(val + test) == [("val", i) for i in range(6)]


def test_missing_file_is_named_or_kept_invalid(tmp_path):
    root = N.write_fixture(tmp_path / "miss", hw=HW, leave_out="depth")
    with pytest.raises(DataMissingError, match=r"train/depth/0\.npy"):
        build(root)
    data = build(root, size=0, missing_labels="invalid")
    assert data.info["missing_label_files"] == 1
    split = next(
        s
        for s in [*data.train_envs.values(), data.val, data.test]
        if any((it.split, it.index) == ("train", 0) for it in s.items)
    )
    it = next(it for it in split.items if (it.split, it.index) == ("train", 0))
    _, y = mtan.read_mtan(it)
    assert np.isnan(y["depth"]).all() and not np.isnan(y["normal"][:, 3:]).any()


def test_bad_manifest_and_bad_values_are_clear_errors(tmp_path):
    root = N.write_fixture(tmp_path / "bad", hw=HW)
    (root / N.MANIFEST).write_text("split,index,scene_type\ntrain,0,bedroom\n")
    with pytest.raises(ValueError, match="names no scene_type for 13"):
        build(root)
    (root / N.MANIFEST).write_text("split,idx,scene\n")
    with pytest.raises(ValueError, match="header must be 'split,index,scene_type'"):
        build(root)
    root = N.write_fixture(tmp_path / "bad2", hw=HW, manifest=False)
    np.save(root / "val" / "label" / "0.npy", np.full(HW, 13.0, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = build(root, size=0)
    split = data.val if any(it.index == 0 for it in data.val.items) else data.test
    with pytest.raises(ValueError, match=r"val/label/0\.npy holds values outside the integers -1\.\.12"):
        split.load(np.array([next(k for k, it in enumerate(split.items) if it.index == 0)]))


def test_empty_root_names_the_layout_and_where_the_data_lives(tmp_path):
    with pytest.raises(DataMissingError) as e:
        build(tmp_path / "nothing")
    msg = str(e.value)
    assert "{train,val}/label/{i}.npy" in msg and "lorenmt/mtan" in msg and "nyu_depth_v2" in msg
    assert "fixture nyuv2" in msg and not N.available(str(tmp_path / "nothing"))


def test_cli_fixture_and_training_end_to_end(tmp_path, capsys):
    assert data_main(["fixture", "nyuv2", str(tmp_path / "fx")]) == 0
    assert "data.root=" in capsys.readouterr().out and N.available(str(tmp_path / "fx"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtcrl_lite.run.train",
            "--dataset",
            "nyuv2",
            "--set",
            f"data.root={tmp_path / 'fx'}",
            "--smoke",
            "--method",
            "mtcrl",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out["test"]) == {"segmentation", "depth", "normal"}
