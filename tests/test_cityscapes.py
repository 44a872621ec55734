"""CityScapes loader, MTAN and official layouts: the label-id -> category table, disparity, ignore and invalid
pixels, the split by city and its fallback, missing files, the empty root, the fixture CLI and end-to-end runs."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from mtcrl_lite.data import DataMissingError, mtan
from mtcrl_lite.data import cityscapes as C
from mtcrl_lite.data.__main__ import main as data_main

HW = (8, 16)


def build(root, **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "cityscapes: cities of the lists")  # the fixture holds 5 of 21 cities
        return C.build_cityscapes(C.CityScapesConfig(root=str(root), **kw))


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return {lay: C.write_fixture(tmp_path_factory.mktemp(lay), layout=lay, hw=HW) for lay in C.LAYOUTS}


def test_label_table_maps_ids_to_the_seven_categories_with_void_ignored():
    lut = C.label_to_category()
    # by the cityscapesscripts table: road 7 and sidewalk 8 flat; building 11 construction; pole 17 object;
    # vegetation 21 nature; sky 23; person 24 human; car 26 vehicle; unlabeled 0 .. ground 6 void
    assert lut[[7, 8, 11, 17, 21, 23, 24, 26, 33]].tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 6]
    assert (lut[:7] == -1).all() and (lut[34:] == -1).all() and set(lut[:34]) == set(range(-1, 7))


def test_official_values_ignore_and_disparity_read_back(fx):
    root = fx["official"]
    data = build(root, layout="official", size=0)
    assert data.input_shape == (3, *HW) and [t.name for t in data.tasks] == ["segmentation", "depth"]
    it = data.test.items[0]
    x, y = C.read_official(it)
    np.testing.assert_array_equal(x, np.asarray(Image.open(it.path("leftImg8bit"))).transpose(2, 0, 1))
    ids = np.asarray(Image.open(it.path("gtFine"))).astype(np.int64)
    np.testing.assert_array_equal(y["segmentation"], C.label_to_category()[ids])
    assert (y["segmentation"][:2, :4] == -1).all()  # id 0 = void -> ignore
    p = np.asarray(Image.open(it.path("disparity"))).astype(np.int64)
    d = y["depth"][0]
    assert np.isnan(d[:2]).all() and d[-1, -1] == pytest.approx(10.0)  # (2561 - 1) / 256
    np.testing.assert_allclose(d[2:], (p[2:] - 1) / 256.0, rtol=1e-6)


def test_official_disparity_scales_with_the_width(fx):
    data = build(fx["official"], layout="official", size=4)
    it = data.test.items[0]
    _, y = C.read_official(it)
    assert y["depth"].shape == (1, 4, 8) and y["segmentation"].shape == (4, 8)
    assert y["depth"][0, -1, -1] == pytest.approx(10.0 * 8 / 16)


def test_mtan_values_ignore_and_invalid_depth(fx):
    data = build(fx["mtan"], size=0)
    it = data.val.items[0]
    x, y = mtan.read_mtan(it)
    np.testing.assert_array_equal(x, np.moveaxis(np.load(fx["mtan"] / it.split / "image" / f"{it.index}.npy"), -1, 0))
    lab = np.load(fx["mtan"] / it.split / "label_7" / f"{it.index}.npy")
    np.testing.assert_array_equal(y["segmentation"], lab.astype(np.int64))
    assert (y["segmentation"][:2, :4] == -1).all() and np.isnan(y["depth"][0, :2]).all()
    assert not np.isnan(y["depth"][0, 2:]).any() and data.tasks[0].n_out == 7


@pytest.mark.parametrize("layout", C.LAYOUTS)
def test_split_by_city_is_disjoint_and_follows_the_lists(fx, layout):
    data = build(fx[layout], layout=layout, size=0)
    g = mtan.read_groups(C.GROUPS)
    assert set(data.train_envs) == {"north", "west", "south_east"} and data.info["split_by"] == "city"
    if layout == "official":
        cities = {
            name: {it.city for it in s.items}
            for name, s in {**data.train_envs, "val": data.val, "test": data.test}.items()
        }
    else:
        table = mtan.read_manifest(fx[layout] / C.MANIFEST, "city")
        cities = {
            name: {table[(it.split, it.index)] for it in s.items}
            for name, s in {**data.train_envs, "val": data.val, "test": data.test}.items()
        }
    for name, cs in cities.items():
        assert cs <= set(g["envs"].get(name) or g[name])
    assert cities["test"] <= {"frankfurt", "lindau", "munster"}  # the official val cities
    flat = [c for cs in cities.values() for c in cs]
    assert len(flat) == len(set(flat))


def test_shipped_city_lists():
    g = mtan.read_groups(C.GROUPS)
    train = [c for v in g["envs"].values() for c in v]
    assert len(train) == 15 and len(g["val"]) == 3 and g["test"] == ["frankfurt", "lindau", "munster"]
    assert len(set(train + g["val"] + g["test"])) == 21


def test_mtan_without_cities_falls_back_with_a_warning(tmp_path):
    root = C.write_fixture(tmp_path / "nm", hw=HW, manifest=False)
    with pytest.warns(UserWarning, match="NOT by city"):
        data = build(root, size=0)
    val = {(it.split, it.index) for it in data.val.items}
    test = {(it.split, it.index) for it in data.test.items}
    assert not val & test and len(val | test) == 6 and len(data.train_envs) == 3


@pytest.mark.parametrize(
    "layout, folder, shown",
    [("mtan", "label_7", r"train/label_7/0\.npy"), ("official", "disparity", r"bremen_000000_000019_disparity\.png")],
)
def test_missing_file_is_named_or_kept_invalid(tmp_path, layout, folder, shown):
    root = C.write_fixture(tmp_path / layout, layout=layout, hw=HW, leave_out=folder)
    with pytest.raises(DataMissingError, match=shown):
        build(root, layout=layout)
    data = build(root, layout=layout, missing_labels="invalid")
    assert data.info["missing_label_files"] == 1


@pytest.mark.parametrize(
    "layout, expected",
    [("mtan", "{train,val}/label_7/{i}.npy"), ("official", "gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine")],
)
def test_empty_root_names_the_layout_and_where_the_data_lives(tmp_path, layout, expected):
    with pytest.raises(DataMissingError) as e:
        build(tmp_path / "nothing", layout=layout)
    msg = str(e.value)
    assert expected in msg and "cityscapes-dataset.com" in msg and "lorenmt/mtan" in msg
    assert f"data.layout={'official' if layout == 'mtan' else 'mtan'}" in msg
    assert not C.available(str(tmp_path / "nothing"), layout)
    with pytest.raises(ValueError, match="data.layout must be one of"):
        build(tmp_path, layout="png")


@pytest.mark.parametrize("layout", C.LAYOUTS)
def test_cli_fixture_and_training_end_to_end(tmp_path, capsys, layout):
    assert data_main(["fixture", "cityscapes", str(tmp_path / "fx"), "--layout", layout]) == 0
    assert "data.root=" in capsys.readouterr().out and C.available(str(tmp_path / "fx"), layout)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtcrl_lite.run.train",
            "--dataset",
            "cityscapes",
            "--set",
            f"data.root={tmp_path / 'fx'}",
            "--set",
            f"data.layout={layout}",
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
    assert set(json.loads(r.stdout.strip().splitlines()[-1])["test"]) == {"segmentation", "depth"}
