"""The scenes stand-in per benchmark (data.style): nyuv2 rooms with 13 classes, cityscapes streets with 7 classes
and inverse depth; the confounder, shortcut_accuracy and depth_agreement in each; taskonomy unchanged."""

import numpy as np
import pytest

from mtcrl_lite.data import cityscapes, nyuv2
from mtcrl_lite.data.scenes import (
    STYLES,
    ScenesConfig,
    build_scenes,
    depth_agreement,
    render_layouts,
    sample_layouts,
    sample_style,
    shortcut_accuracy,
)
from mtcrl_lite.run.config import LATER_FIELDS, make_config

SMALL = dict(buildings_per_env=2, images_per_building=48, n_val=48, n_test=48, val_buildings=2, test_buildings=2)


@pytest.fixture(scope="module", params=["nyuv2", "cityscapes"])
def styled(request):
    return request.param, build_scenes(ScenesConfig(style=request.param, **SMALL))


def test_tasks_classes_and_names_match_the_real_loader(styled):
    style, data = styled
    real = {"nyuv2": nyuv2, "cityscapes": cityscapes}[style]
    assert [t.name for t in data.tasks] == list(real.TASK_NAMES)
    assert [(t.kind, t.n_out) for t in data.tasks] == [
        (real.TASKS[t].kind, real.TASKS[t].n_out) for t in real.TASK_NAMES
    ]
    assert tuple(data.info["class_names"]) == real.CLASS_NAMES and data.info["stand_in"]


def test_shapes_and_valid_values(styled):
    style, data = styled
    s = data.train_envs["env0"]
    n = len(s)
    assert s.x.shape == (n, 3, 32, 32) and s.x.dtype == np.uint8
    seg, depth = s.y["segmentation"], s.y["depth"]
    assert seg.shape == (n, 32, 32) and seg.dtype == np.int64 and depth.shape == (n, 1, 32, 32)
    assert seg.min() >= 0 and seg.max() < len(data.info["class_names"])
    assert (depth[~np.isnan(depth)] > 0).all()
    counts = np.bincount(seg.ravel(), minlength=len(data.info["class_names"]))
    if style == "nyuv2":
        names = ("floor", "wall", "window", "picture", "objects", "chair", "table")
        nrm = s.y["normal"]
        np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-5)
    else:
        names = cityscapes.CLASS_NAMES  # all seven categories appear
        sky = seg == cityscapes.CLASS_NAMES.index("sky")
        assert np.isnan(depth[:, 0][sky]).all() and np.nanmax(depth) < 1.0  # 1 / z, z >= ~2 m
        road = seg == 0
        assert np.nanmin(1.0 / depth[:, 0][road]) > 1.0  # road pixels a metre or more away
    assert all(counts[data.info["class_names"].index(c)] > 0 for c in names), counts


def test_confounder_in_training_absent_in_val_and_test(styled):
    _, data = styled
    c = data.info["confound"]
    assert c["env0"]["corr"] > 0.7 and c["env0"]["agree"] > 0.85 and c["env1"]["corr"] > 0.5
    for split in ("val", "test"):
        assert abs(c[split]["corr"]) < 0.3 and c[split]["agree"] < 0.5
    assert set(c["env0"]["mean_z"]) == set(data.info["object_classes"])


def test_depth_agreement_and_shortcut_accuracy_follow_the_style(styled):
    style, data = styled
    s = data.train_envs["env0"]
    seg, depth = s.y["segmentation"], s.y["depth"]
    agree = depth_agreement(seg, depth, style)
    objects = np.isin(seg, [data.info["class_names"].index(c) for c in data.info["object_classes"]])
    assert ((agree >= 0) <= objects).all() and (agree == 1).sum() > (agree == 0).sum()  # the shortcut holds
    test = depth_agreement(data.test.y["segmentation"], data.test.y["depth"], style)
    assert (test == 1).sum() < (test == 0).sum()  # ... but not in test
    acc = shortcut_accuracy(seg, seg, depth, style)
    assert acc["acc_agree"] == acc["acc_disagree"] == 1.0 and acc["gap"] == 0.0


def test_cityscapes_depth_is_the_inverse_of_the_zbuffer():
    spec = STYLES["cityscapes"]
    style = sample_style(np.random.default_rng(3), spec=spec)
    lay = sample_layouts(4, style, np.random.default_rng(4), 0.5, spec)
    out = render_layouts(lay, style, np.random.default_rng(5), 16, missing_depth=0.0, spec=spec)
    data = build_scenes(ScenesConfig(style="cityscapes", tasks=("depth",), **SMALL))
    assert [t.name for t in data.tasks] == ["depth"]
    z = out["depth_zbuffer"]
    assert np.isnan(z[:, 0][out["segment_semantic"] == 4]).all() and style.facade_height >= 6.0
    assert (lay.center[..., 2][lay.cls >= 0] >= 4.0).all() and (lay.center[..., 2][lay.cls >= 0] <= 16.0).all()


def test_taskonomy_style_is_todays_stand_in_and_bad_values_are_refused():
    small = dict(buildings_per_env=1, images_per_building=8, n_val=8, n_test=8, val_buildings=1, test_buildings=1)
    a, b = build_scenes(ScenesConfig(**small)), build_scenes(ScenesConfig(style="taskonomy", **small))
    assert np.array_equal(a.train_envs["env0"].x, b.train_envs["env0"].x) and "style" not in a.info
    with pytest.raises(ValueError, match="unknown scenes style 'kitti'"):
        build_scenes(ScenesConfig(style="kitti", **small))
    with pytest.raises(ValueError, match="valid: \\['segmentation', 'depth'\\]"):
        build_scenes(ScenesConfig(style="cityscapes", tasks=("normal",), **small))
    # the new field does not change the digest (run directory) of existing scenes runs
    assert LATER_FIELDS["data.style"] == "taskonomy"
    cfg = make_config("scenes", "mtl", 0, "smoke")
    assert cfg.digest() == make_config("scenes", "mtl", 0, "smoke", {"data.style": "taskonomy"}).digest()
    assert cfg.digest() != make_config("scenes", "mtl", 0, "smoke", {"data.style": "nyuv2"}).digest()
