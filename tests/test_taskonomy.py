"""Taskonomy loader: split lists, the fixture in the release's layout, per-task normalisation and invalid masks."""

import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from mtcrl_lite.data import DataMissingError
from mtcrl_lite.data import taskonomy as T
from mtcrl_lite.data.__main__ import main as data_main

SIZE = 32  # the fixture's native side
VIEWS = 3
TRAIN = ["hallettsville", "kingfisher", "seeley", "martinville"]  # first lines of the taskgrouping lists
VAL = ["wainscott", "hobson"]
TEST = ["maida", "tolstoy"]


def build(root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the fixture holds 8 of the 532 listed buildings
        return T.build_taskonomy(T.TaskonomyConfig(root=str(root), **kw))


def raw(root, folder, building, view, domain=None):
    path = root / folder / building / f"{view}_domain_{domain or T.DOMAINS[folder][0]}.png"
    return np.asarray(Image.open(path)).astype(np.int64)


def sample(data, part, building, view):
    split = data.val if part == "val" else data.test if part == "test" else data.train_envs[part]
    i = next(k for k, it in enumerate(split.items) if (it.building, it.view) == (building, view))
    return split.read(split.items[i])


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return T.write_fixture(tmp_path_factory.mktemp("taskonomy"), size=SIZE, views_per_building=VIEWS)


def test_split_lists_are_disjoint_by_building_with_documented_sizes():
    sizes = {
        "taskgrouping": (480, 26, 26),
        "tiny": (25, 5, 5),
        "medium": (99, 20, 19),
        "full": (346, 67, 69),
        "fullplus": (383, 75, 79),
    }
    lists = {s: T.split_lists(s) for s in T.SPLITS}
    for s, (a, b, c) in sizes.items():
        assert tuple(len(lists[s][p]) for p in T.PARTS) == (a, b, c), s
        for p in T.PARTS:
            assert len(set(lists[s][p])) == len(lists[s][p])
    for small, big in [("tiny", "medium"), ("medium", "full"), ("full", "fullplus")]:  # official splits nest
        for p in T.PARTS:
            assert set(lists[small][p]) <= set(lists[big][p])
    tg = lists["taskgrouping"]
    assert tg["train"][:3] == TRAIN[:3] and tg["val"][:2] == VAL and tg["test"][:2] == TEST
    assert "gough" not in tg["train"] and "wiconisco" not in tg["train"]  # commented out upstream
    with pytest.raises(ValueError, match="unknown Taskonomy split"):
        T.split_lists("nope")


def test_split_dir_lists_that_share_a_building_are_refused(tmp_path):
    for p, names in {"train": "a\nb\n", "val": "c # comment\n", "test": "b\n"}.items():
        (tmp_path / f"mine_{p}.txt").write_text(names)
    with pytest.raises(ValueError, match=r"both train and test: \['b'\]"):
        T.split_lists("mine", tmp_path)


def test_fixture_splits_by_building_into_round_robin_environments(fx):
    data = build(fx, size=0)
    assert data.name == "taskonomy" and data.info["stand_in"] is False
    assert data.info["buildings"] == {"train": sorted(TRAIN), "val": sorted(VAL), "test": sorted(TEST)}
    # alphabetical order hallettsville, kingfisher, martinville, seeley dealt into 3 environments
    assert data.info["envs"] == {"env0": ["hallettsville", "seeley"], "env1": ["kingfisher"], "env2": ["martinville"]}
    seen = {}
    for name, split in {**data.train_envs, "val": data.val, "test": data.test}.items():
        buildings = {it.building for it in split.items}
        for b in buildings:
            assert b not in seen, f"{b} in {seen.get(b)} and {name}"
            seen[b] = name
        assert len(split) == VIEWS * len(buildings) == data.info["n_views"][name]
    assert set(data.info["envs"]["env0"]) == {it.building for it in data.train_envs["env0"].items}
    assert [it.view for it in data.val.items[:VIEWS]] == ["point_0_view_0", "point_0_view_1", "point_1_view_0"]


def test_tasks_shapes_and_dtypes(fx):
    data = build(fx, size=16)
    assert [(t.name, t.kind, t.n_out, t.primary) for t in data.tasks] == [
        ("segment_semantic", "segmentation", 17, "miou"),
        ("depth_zbuffer", "depth", 1, "abs_err"),
        ("normal", "normal", 3, "mean_angle"),
        ("keypoints2d", "pixel", 1, "l1"),
        ("edge_texture", "pixel", 1, "l1"),
    ]
    x, y = data.val.read(data.val.items[0])
    assert x.shape == (3, 16, 16) and x.dtype == np.uint8
    want = {
        "segment_semantic": ((16, 16), np.int64),
        "depth_zbuffer": ((1, 16, 16), np.float32),
        "normal": ((3, 16, 16), np.float32),
        "keypoints2d": ((1, 16, 16), np.float32),
        "edge_texture": ((1, 16, 16), np.float32),
    }
    assert {t: (v.shape, v.dtype) for t, v in y.items()} == want
    assert data.input_shape == (3, 16, 16)
    xb, yb = data.val[[0, 1]]  # through Split: x scaled to [0, 1]
    assert xb.dtype == torch.float32 and float(xb.max()) <= 1.0 and yb["segment_semantic"].dtype == torch.int64


def test_task_subset_comes_in_canonical_order(fx):
    data = build(fx, size=8, tasks=("edge_texture", "depth_zbuffer"))
    assert [t.name for t in data.tasks] == ["depth_zbuffer", "edge_texture"]
    assert set(data.test.read(data.test.items[0])[1]) == {"depth_zbuffer", "edge_texture"}
    with pytest.raises(ValueError, match="unknown or no tasks"):
        build(fx, tasks=("depth",))


def test_depth_is_metres_with_the_invalid_mask(fx):
    data = build(fx, size=0)
    b, v = "kingfisher", "point_1_view_0"
    d = sample(data, "env1", b, v)[1]["depth_zbuffer"][0]
    r = raw(fx, "depth_zbuffer", b, v)
    invalid = r >= T.DEPTH_INVALID_FROM
    assert invalid[: SIZE // 4].all() and not invalid[SIZE // 4 :].any()  # the no-hit region is 65535
    assert np.isnan(d[invalid]).all() and not np.isnan(d[~invalid]).any()
    assert np.array_equal(d[~invalid], (r[~invalid] / 512).astype(np.float32))
    (i, j), value = T.FIXTURE_DEPTH_PIXEL
    assert value == 1024 and d[i, j] == 2.0
    # the threshold: taskgrouping's 2**13 by default, 65535 keeps everything but the no-hit value
    r = np.array([[0, 8191, 8192, 65534, 65535]])
    assert np.isnan(T.decode_depth(r)).tolist() == [[False, False, True, True, True]]
    assert np.isnan(T.decode_depth(r, 65535)).tolist() == [[False, False, False, False, True]]
    assert T.decode_depth(r, 65535)[0, 3] == np.float32(65534 / 512)


def test_normals_are_unit_vectors_nan_where_invalid(fx):
    data = build(fx, size=0)
    n = sample(data, "val", "hobson", "point_0_view_1")[1]["normal"]
    r = raw(fx, "normal", "hobson", "point_0_view_1")
    bad = np.isnan(n)
    assert (bad.all(0) == bad.any(0)).all()  # a pixel is invalid in all three channels
    assert bad[0, : SIZE // 4].all() and not bad[0, SIZE // 4 :].any()
    length = np.sqrt((n[:, SIZE // 4 :] ** 2).sum(0))
    assert np.allclose(length, 1.0, atol=1e-6)
    v = r[SIZE // 4 :].astype(np.float64) / 127.5 - 1  # the stored 8-bit vector, renormalised
    assert np.allclose(n[:, SIZE // 4 :].transpose(1, 2, 0), v / np.linalg.norm(v, axis=-1, keepdims=True), atol=1e-6)
    # grey pixels (no normal) are invalid even without a depth mask; normal_mask_from_depth=False keeps the rest
    assert np.isnan(T.decode_normal(np.full((1, 2, 3), 128, np.uint8))).all()
    n2 = sample(build(fx, size=0, normal_mask_from_depth=False), "val", "hobson", "point_0_view_1")[1]["normal"]
    assert np.isnan(n2).all(0)[: SIZE // 4].all()  # the fixture writes grey where depth is invalid


def test_segment_labels_shift_by_one_with_ignore(fx):
    data = build(fx, size=0)
    s = sample(data, "test", "maida", "point_0_view_0")[1]["segment_semantic"]
    r = raw(fx, "segment_semantic", "maida", "point_0_view_0", "segmentsemantic")
    assert np.array_equal(s, r - 1)
    assert (s[: SIZE // 4, : SIZE // 4] == T.IGNORE).all() and s.min() >= -1 and s.max() <= T.N_CLASSES - 1
    assert T.N_CLASSES == 17 and T.CLASS_NAMES[0] == "background"
    with pytest.raises(ValueError, match="class value 18"):
        T.decode_segment(np.array([[1, 18]]))


def test_keypoints_and_edges_scale_16_bit_to_unit_interval(fx):
    data = build(fx, size=0)
    y = sample(data, "env0", "seeley", "point_0_view_0")[1]
    pixels = {"keypoints2d": T.FIXTURE_KEYPOINT_PIXEL, "edge_texture": T.FIXTURE_EDGE_PIXEL}
    for task, ((i, j), value) in pixels.items():
        a = y[task][0]
        assert a[i, j] == np.float32(value / 65535)
        assert np.array_equal(a, (raw(fx, task, "seeley", "point_0_view_0") / 65535).astype(np.float32))
        assert not np.isnan(a).any() and 0 <= a.min() and a.max() <= 1
    assert y["keypoints2d"][0, 0, 0] == 1.0


@pytest.mark.parametrize("size", [12, 48])
def test_resizing_is_nearest_for_labels_and_bilinear_for_rgb(fx, size):
    data = build(fx, size=size)
    b, v = "wainscott", "point_0_view_0"
    x, y = sample(data, "val", b, v)
    idx = T.nearest_index(SIZE, size)
    pick = np.ix_(idx, idx)
    assert np.array_equal(y["segment_semantic"], raw(fx, "segment_semantic", b, v, "segmentsemantic")[pick] - 1)
    d, r = y["depth_zbuffer"][0], raw(fx, "depth_zbuffer", b, v)[pick]
    assert np.array_equal(np.isnan(d), r >= T.DEPTH_INVALID_FROM)  # never averaged across the mask
    assert np.array_equal(d[r < T.DEPTH_INVALID_FROM], (r[r < T.DEPTH_INVALID_FROM] / 512).astype(np.float32))
    assert np.array_equal(np.isnan(y["normal"][0]), r >= T.DEPTH_INVALID_FROM)
    img = Image.open(fx / "rgb" / b / f"{v}_domain_rgb.png").resize((size, size), Image.BILINEAR)
    assert np.array_equal(x, np.asarray(img).transpose(2, 0, 1))


def test_missing_label_file_is_an_error_or_all_invalid(tmp_path):
    root = T.write_fixture(tmp_path / "tk", size=16, views_per_building=2, leave_out="normal")
    gone = root / "normal" / TRAIN[0] / "point_0_view_0_domain_normal.png"
    assert not gone.exists()
    with pytest.raises(DataMissingError, match="missing_labels=invalid") as e:
        build(root)
    assert str(gone) in str(e.value)
    data = build(root, size=0, missing_labels="invalid")
    assert data.info["missing_label_files"]["normal"] == 1
    y = sample(data, "env0", TRAIN[0], "point_0_view_0")[1]
    assert np.isnan(y["normal"]).all() and not np.isnan(y["depth_zbuffer"][0, 8:]).any()
    assert not np.isnan(sample(data, "env0", TRAIN[0], "point_0_view_1")[1]["normal"][:, 8:]).any()
    # a file that disappears after the scan: the read names it
    data = build(root, size=0, tasks=("depth_zbuffer",))
    lost = root / "depth_zbuffer" / sorted(VAL)[-1] / "point_0_view_1_domain_depth_zbuffer.png"
    lost.unlink()
    with pytest.raises(DataMissingError, match=re.escape(str(lost))):
        data.val[len(data.val) - 1]


def test_empty_root_names_layout_root_and_missing_buildings(tmp_path):
    with pytest.raises(DataMissingError) as e:
        T.build_taskonomy(T.TaskonomyConfig(root=str(tmp_path / "none")))
    msg = str(e.value)
    for part in (
        str(tmp_path / "none"),
        "rgb/<building>/point_<p>_view_<v>_domain_rgb.png",
        "depth_zbuffer/<building>/",
        "segment_semantic/<building>/",
        "taskgrouping_{train,val,test}.txt",
        "train 480/480 (hallettsville",
        "test 26/26",
        "cannot be downloaded",
        "omnidata",
        "tstandley/taskgrouping",
        "fixture taskonomy",
    ):
        assert part in msg, part


def test_missing_buildings_warn_and_are_recorded(fx):
    with pytest.warns(UserWarning, match="train 476/480, val 24/26, test 24/26"):
        data = T.build_taskonomy(T.TaskonomyConfig(root=str(fx)))
    assert len(data.info["missing_buildings"]["train"]) == 476
    with pytest.raises(ValueError, match="fewer than data.n_envs=5"):
        build(fx, n_envs=5)
    assert list(build(fx, n_envs=0).train_envs) == sorted(TRAIN)  # one environment per building


def test_max_per_building_takes_the_first_views(fx):
    data = build(fx, size=8, max_per_building=2)
    assert len(data.val) == 4 and {it.view for it in data.val.items} == {"point_0_view_0", "point_0_view_1"}


def test_other_accepted_layouts_read_the_same_values(fx, tmp_path):
    ref = sample(build(fx, size=8), "test", "tolstoy", "point_1_view_0")
    # taskgrouping's naming of segment files, and files named by the view alone
    for variant in ("segment_semantic", "plain"):
        root = tmp_path / variant
        shutil.copytree(fx, root)
        for f in list(root.rglob("*.png")):
            if variant == "plain":
                f.rename(f.with_name(f.name.split("_domain_")[0] + ".png"))
            elif "segmentsemantic" in f.name:
                f.rename(f.with_name(f.name.replace("segmentsemantic", "segment_semantic")))
        got = sample(build(root, size=8), "test", "tolstoy", "point_1_view_0")
        assert np.array_equal(got[0], ref[0])
        for t in ref[1]:
            assert np.array_equal(got[1][t], ref[1][t], equal_nan=True), (variant, t)
    # omnidata: ROOT/<folder>/taskonomy/<building>/
    nested = T.write_fixture(tmp_path / "omni", size=SIZE, views_per_building=VIEWS, nested=True)
    data = build(nested, size=8)
    assert data.info["layout"] == "ROOT/<folder>/taskonomy/<building>/"
    got = sample(data, "test", "tolstoy", "point_1_view_0")
    assert all(np.array_equal(got[1][t], ref[1][t], equal_nan=True) for t in ref[1])


def test_cli_fixture_subcommand(tmp_path, capsys):
    assert data_main(["fixture", "taskonomy", str(tmp_path / "fx"), "--views", "2", "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "96 PNG files" in out and "data.root=" in out and "hallettsville" in out
    data = build(tmp_path / "fx", size=0)
    assert len(data.test) == 4 and data.input_shape == (3, 16, 16)
    with pytest.raises(SystemExit):  # fetch still parses (and refuses unknown names)
        data_main(["fetch", "taskonomy"])


@pytest.mark.parametrize("workers", [0, 1])
def test_dataloader_yields_documented_batches(fx, workers):
    split = build(fx, size=16).val
    loader = DataLoader(
        split,
        sampler=BatchSampler(SequentialSampler(range(len(split))), 4, False),
        batch_size=None,
        num_workers=workers,
    )
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [4, 2]
    x, y = batches[0]
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert y["segment_semantic"].shape == (4, 16, 16) and y["segment_semantic"].dtype == torch.int64
    assert y["depth_zbuffer"].shape == (4, 1, 16, 16) and y["normal"].shape == (4, 3, 16, 16)
    assert y["keypoints2d"].shape == y["edge_texture"].shape == (4, 1, 16, 16)
    assert torch.isnan(y["depth_zbuffer"][:, :, :4]).all() and not torch.isnan(y["depth_zbuffer"][:, :, 4:]).any()
