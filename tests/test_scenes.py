"""Synthetic scenes (data/scenes.py): exact geometry on hand-set scenes, determinism, shapes, the confounder."""

import math

import numpy as np
import pytest

from mtcrl_lite.data.base import MTLData
from mtcrl_lite.data.scenes import (
    BOX,
    CLASS_NAMES,
    CYLINDER,
    FLOOR,
    FOV_DEG,
    SPHERE,
    TASK_NAMES,
    WALL,
    BuildingStyle,
    Layout,
    ScenesConfig,
    _style,
    build_scenes,
    camera_rotation,
    confound_stats,
    edge_map,
    project_keypoints,
    render_layouts,
    render_scenes,
    sample_layouts,
    sample_style,
    scene_panels,
)

STYLE = sample_style(np.random.default_rng(123))


def render(lay, size=33, **kw):
    return render_layouts(lay, STYLE, np.random.default_rng(0), size, missing_depth=0.0, **kw)


def cam_ray(i, j, size):
    """Camera-frame direction (z = 1) of pixel (row i, column j), written out independently of the module."""
    f = (size / 2) / math.tan(math.radians(FOV_DEG / 2))
    return np.array([(j + 0.5 - size / 2) / f, (i + 0.5 - size / 2) / f, 1.0])


def world_ray(i, j, size, pitch_deg):
    x, y, z = cam_ray(i, j, size)
    s, c = math.sin(math.radians(pitch_deg)), math.cos(math.radians(pitch_deg))
    return np.array([x, -c * y - s * z, -s * y + c * z])  # camera y points down, the camera pitches down


@pytest.fixture(scope="module")
def default_data():
    return build_scenes(ScenesConfig())


# ---------------------------------------------------------------------------------------------------- geometry


def test_sphere_on_the_optical_axis():
    """Odd size: the centre pixel looks along +z; a sphere of radius 0.5 centred 3 m ahead, at eye height."""
    h = 1.5
    lay = Layout.single([(SPHERE, (0.0, h, 3.0), (0.5, 0.5, 0.5), 0.0)], cam_height=h, pitch_deg=0.0)
    out = render(lay, 33)
    assert out["segment_semantic"][0, 16, 16] == SPHERE
    assert out["depth_zbuffer"][0, 0, 16, 16] == pytest.approx(2.5, abs=1e-6)
    np.testing.assert_allclose(out["normal"][0, :, 16, 16], [0, 0, -1], atol=1e-6)
    # every pixel whose ray meets the sphere (analytic discriminant) is labelled sphere, and no other pixel is;
    # where it does, the depth is the nearer root of |t d - c|^2 = r^2 (d with z = 1, so t is z-depth)
    c = np.array([0.0, 0.0, 3.0])  # centre in the camera frame (pitch 0)
    hits = np.zeros((33, 33), bool)
    for i in range(33):
        for j in range(33):
            d = cam_ray(i, j, 33)
            a, b, cc = d @ d, d @ c, c @ c - 0.25
            disc = b * b - a * cc
            hits[i, j] = disc >= 0
            if hits[i, j]:
                t = (b - math.sqrt(disc)) / a
                assert out["depth_zbuffer"][0, 0, i, j] == pytest.approx(t, rel=1e-6)
                np.testing.assert_allclose(out["normal"][0, :, i, j], (t * d - c) / 0.5, atol=1e-5)
    assert 50 < hits.sum() < 33 * 33
    np.testing.assert_array_equal(out["segment_semantic"][0] == SPHERE, hits)


@pytest.mark.parametrize("pitch_deg", [0.0, 22.0])
def test_floor_and_back_wall_depth_and_normals(pitch_deg):
    h, D, size = 1.4, 6.0, 32
    out = render(Layout.single([], cam_height=h, pitch_deg=pitch_deg, room_depth=D, room_width=30.0), size)
    s, c = math.sin(math.radians(pitch_deg)), math.cos(math.radians(pitch_deg))
    seg, depth, nrm = out["segment_semantic"][0], out["depth_zbuffer"][0, 0], out["normal"][0]
    # bottom row, centre: the floor y = 0 at t = h / (-d_y)
    i, j = size - 1, size // 2
    assert seg[i, j] == FLOOR
    assert depth[i, j] == pytest.approx(h / -world_ray(i, j, size, pitch_deg)[1], rel=1e-6)
    np.testing.assert_allclose(nrm[:, i, j], [0, -c, -s], atol=1e-6)  # world up in the camera frame
    # top row, centre: the back wall z = D at t = D / d_z, normal -z (towards the camera)
    i = 0
    assert seg[i, j] == WALL
    assert depth[i, j] == pytest.approx(D / world_ray(i, j, size, pitch_deg)[2], rel=1e-6)
    np.testing.assert_allclose(nrm[:, i, j], [0, s, -c], atol=1e-6)
    # walls: a wide room (30 m) shows no side wall; a narrow one does, with normal +x on the left
    narrow = render(Layout.single([], cam_height=h, pitch_deg=pitch_deg, room_depth=D, room_width=2.0), size)
    assert narrow["segment_semantic"][0, size // 2, 0] == WALL
    np.testing.assert_allclose(narrow["normal"][0, :, size // 2, 0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(narrow["normal"][0, :, size // 2, -1], [-1, 0, 0], atol=1e-6)


def test_box_and_cylinder_faces():
    h, size = 1.5, 33
    box = render(Layout.single([(BOX, (0.0, h, 3.0), (0.4, 0.3, 0.5), 0.0)], cam_height=h, pitch_deg=0.0), size)
    assert box["segment_semantic"][0, 16, 16] == BOX
    assert box["depth_zbuffer"][0, 0, 16, 16] == pytest.approx(2.5, abs=1e-6)  # front face z = 3 - 0.5
    np.testing.assert_allclose(box["normal"][0, :, 16, 16], [0, 0, -1], atol=1e-6)
    # rotated by 45 degrees a cube shows its vertical edge on the axis, at 3 - 0.5 sqrt(2)
    cube = render(
        Layout.single([(BOX, (0.0, h, 3.0), (0.5, 0.5, 0.5), math.pi / 4)], cam_height=h, pitch_deg=0.0), size
    )
    assert cube["depth_zbuffer"][0, 0, 16, 16] == pytest.approx(3 - 0.5 * math.sqrt(2), abs=1e-6)
    # the face right of the edge is the cube's face with world normal (sin 45, 0, -cos 45) rotated...
    n_right = cube["normal"][0, :, 16, 20]
    np.testing.assert_allclose(np.abs(n_right), [math.sqrt(0.5), 0, math.sqrt(0.5)], atol=1e-6)
    assert n_right[0] > 0 and n_right[2] < 0
    # cylinder (radius 0.5, top at y = 1) seen from 1.5 m: the axis pixel hits the side at z = 2.5
    cyl = Layout.single([(CYLINDER, (0.0, 0.5, 3.0), (0.5, 0.5, 0.5), 0.0)], cam_height=h, pitch_deg=0.0)
    out = render(cyl, size)
    i, j = 21, 16  # 5 pixels below the axis: looks down onto the top cap
    d = world_ray(i, j, size, 0.0)
    t_top = (1.0 - h) / d[1]
    assert abs(t_top * d[2] - 3.0) < 0.5 and out["segment_semantic"][0, i, j] == CYLINDER
    assert out["depth_zbuffer"][0, 0, i, j] == pytest.approx(t_top, rel=1e-6)
    np.testing.assert_allclose(out["normal"][0, :, i, j], [0, -1, 0], atol=1e-6)  # up = -y in the camera
    below = out["segment_semantic"][0, 26:, 16]
    assert (below == CYLINDER).any()  # the side, lower in the image
    k = 26 + int(np.argmax(below == CYLINDER))
    assert out["normal"][0, 1, k, 16] == pytest.approx(0, abs=1e-6) and out["normal"][0, 2, k, 16] < -0.9


def test_normals_unit_depth_positive_labels_in_range():
    out = render_scenes(64, STYLE, np.random.default_rng(5), 32, 0.5)
    nrm = out["normal"]
    assert np.isfinite(nrm).all()
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-5)
    # visible surfaces face the camera: n . (ray direction) < 0
    rays = np.stack([[cam_ray(i, j, 32) for j in range(32)] for i in range(32)]).transpose(2, 0, 1)
    assert ((nrm * rays[None]).sum(1) < 1e-6).all()
    depth = out["depth_zbuffer"]
    assert np.nanmin(depth) > 0.5 and np.nanmax(depth) < 12
    assert 0 < np.isnan(depth).mean() < 0.03  # missing depth: grazing + 0.5 % dropout
    assert set(np.unique(out["segment_semantic"])) == set(range(len(CLASS_NAMES)))
    assert set(np.unique(out["edge_texture"])) <= {0.0, 0.5, 1.0}
    assert out["keypoints2d"].min() >= 0 and out["keypoints2d"].max() <= 1 and out["keypoints2d"].max() > 0.5


def test_missing_depth_rate():
    lay = Layout.single([], pitch_deg=20.0, room_width=30.0)
    dense = render_layouts(lay, STYLE, np.random.default_rng(0), 64, missing_depth=0.0)["depth_zbuffer"]
    holes = render_layouts(lay, STYLE, np.random.default_rng(0), 64, missing_depth=0.3)["depth_zbuffer"]
    assert not np.isnan(dense).any()  # no grazing surface in this view
    assert np.isnan(holes).mean() == pytest.approx(0.3, abs=0.03)


def test_edges_mark_the_occluding_silhouette():
    h = 1.5
    out = render(
        Layout.single([(SPHERE, (0.0, h, 3.0), (0.5, 0.5, 0.5), 0.0)], cam_height=h, pitch_deg=0.0, room_width=30.0)
    )
    seg, edge = out["segment_semantic"][0], out["edge_texture"][0, 0]
    sph = seg == SPHERE
    pad = np.pad(sph, 1, constant_values=False)
    boundary = sph & ~(pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:])
    np.testing.assert_array_equal(edge == 1.0, boundary)  # one pixel thick, on the sphere's side
    assert (edge[~sph & (seg == WALL)] != 1.0).all()
    # the floor/back-wall corner is a crease (0.5): same depth on both sides of it
    assert (edge == 0.5).any()
    # the sphere sits on nothing: a cube standing on the floor meets it in a contact crease
    box = render(Layout.single([(BOX, (0.0, 0.4, 2.6), (0.4, 0.4, 0.4), 0.0)], pitch_deg=25.0, room_width=30.0), 32)
    seg, edge = box["segment_semantic"][0], box["edge_texture"][0, 0]
    cols = np.flatnonzero((seg == BOX).any(0))
    lowest = max(np.flatnonzero(seg[:, c] == BOX).max() for c in cols[2:-2])
    mid = cols[len(cols) // 2]
    assert seg[lowest + 1, mid] == FLOOR and 0.5 in (edge[lowest, mid], edge[lowest + 1, mid])
    assert edge[np.flatnonzero(seg[:, mid] == BOX).min(), mid] == 1.0  # the top edge occludes the floor


def test_edge_rules_on_hand_made_maps():
    one = lambda *rows: np.array([rows], dtype=float)
    flat, tol = one([0, 0, 0, 0]), one([0.01] * 4)
    # object 4 in front of the back wall (plane 1): occlusion on the object's side only
    e = edge_map(one([4, 4, 1, 1]).astype(int), flat.astype(int), one([1.0, 1.0, 2.0, 2.0]), one([1, 1, 1, 1]), tol)
    np.testing.assert_array_equal(e, [[[0, 1, 0, 0]]])
    # floor (0) against back wall (1): a crease, marked on the nearer pixel
    e = edge_map(one([1, 1, 0, 0]).astype(int), flat.astype(int), one([5.0, 5.0, 4.9, 4.9]), flat, tol)
    np.testing.assert_array_equal(e, [[[0, 0, 0.5, 0]]])
    # two faces of one box: crease; object touching the floor (height 0.005 < tol): crease; above it: occlusion
    e = edge_map(one([4, 4, 4, 4]).astype(int), one([0, 0, 1, 1]).astype(int), one([2.0, 2.0, 2.0, 2.0]), flat, tol)
    np.testing.assert_array_equal(e, [[[0, 0.5, 0.5, 0]]])
    for h, want in ((0.005, 0.5), (0.3, 1.0)):
        e = edge_map(one([0, 0, 5, 5]).astype(int), flat.astype(int), one([3.0, 3.0, 2.0, 2.0]), one([0, 0, h, h]), tol)
        np.testing.assert_array_equal(e, [[[0, 0, want, 0]]])


def test_keypoints_visible_corners_of_a_box():
    """Camera above and in front of a cube at x = 0: the 4 top and 2 front-bottom corners are visible."""
    lay = Layout.single([(BOX, (0.0, 0.4, 2.6), (0.4, 0.4, 0.4), 0.0)], cam_height=1.5, pitch_deg=25.0, room_width=30.0)
    R = camera_rotation(lay.pitch)
    row, col, vis = project_keypoints(lay, R, 32)
    corners = vis[0, :8].reshape(2, 2, 2)  # index (sx, sy, sz), each -1 / +1
    assert corners[:, 1, :].all()  # top
    assert corners[:, 0, 0].all() and not corners[:, 0, 1].any()  # front bottom visible, back bottom hidden
    assert not vis[0, 8:32].any()  # empty slots
    heat = render(lay, 32)["keypoints2d"][0, 0]
    for k in np.flatnonzero(vis[0]):
        assert heat[int(round(row[0, k])), int(round(col[0, k]))] > 0.6
    # the hidden back-bottom corners lie behind the front face: no blob there unless a visible one is near
    rows, cols = np.rint(row[0, :8]).astype(int), np.rint(col[0, :8]).astype(int)
    for k in np.flatnonzero(~vis[0, :8]):
        if np.min(np.hypot(rows[vis[0, :8]] - rows[k], cols[vis[0, :8]] - cols[k])) > 3:
            assert heat[rows[k], cols[k]] < 0.05


# ------------------------------------------------------------------------------------- determinism, shapes, API


def test_render_is_pure_given_rng_and_works_at_64():
    a = render_scenes(6, STYLE, np.random.default_rng(7), 64, 0.9)
    b = render_scenes(6, STYLE, np.random.default_rng(7), 64, 0.9)
    c = render_scenes(6, STYLE, np.random.default_rng(8), 64, 0.9)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["rgb"], c["rgb"])
    assert a["rgb"].shape == (6, 3, 64, 64) and a["rgb"].dtype == np.uint8
    assert a["segment_semantic"].shape == (6, 64, 64) and a["normal"].shape == (6, 3, 64, 64)
    # chunking does not change the images
    lay_rng = np.random.default_rng(3)
    lay = sample_layouts(5, STYLE, lay_rng, 0.5)
    one = render_layouts(lay, STYLE, np.random.default_rng(1), 32, chunk=2)
    two = render_layouts(lay, STYLE, np.random.default_rng(1), 32, chunk=5)
    for k in ("segment_semantic", "normal", "edge_texture", "keypoints2d"):
        np.testing.assert_array_equal(one[k], two[k])


def test_default_data_shapes_dtypes_info(default_data):
    d = default_data
    assert isinstance(d, MTLData) and d.name == "scenes"
    assert [t.name for t in d.tasks] == list(TASK_NAMES)
    assert [(t.kind, t.n_out, t.primary) for t in d.tasks] == [
        ("segmentation", 5, "miou"),
        ("depth", 1, "abs_err"),
        ("normal", 3, "mean_angle"),
        ("pixel", 1, "l1"),
        ("pixel", 1, "l1"),
    ]
    assert list(d.train_envs) == ["env0", "env1"]
    assert [len(s) for s in d.train_envs.values()] == [512, 512] and len(d.val) == 256 and len(d.test) == 256
    s = d.train_envs["env0"]
    assert s.x.dtype == np.uint8 and s.x.shape == (512, 3, 32, 32) and d.input_shape == (3, 32, 32)
    want = {
        "segment_semantic": (np.int64, (512, 32, 32)),
        "depth_zbuffer": (np.float32, (512, 1, 32, 32)),
        "normal": (np.float32, (512, 3, 32, 32)),
        "keypoints2d": (np.float32, (512, 1, 32, 32)),
        "edge_texture": (np.float32, (512, 1, 32, 32)),
    }
    for t, (dt, shape) in want.items():
        assert s.y[t].dtype == dt and s.y[t].shape == shape, t
    x, y = s[[0, 1]]
    assert x.dtype.is_floating_point and float(x.max()) <= 1.0
    assert d.info["stand_in"] is True and d.info["label"] == "synthetic stand-in (scenes)"
    assert d.info["class_names"] == list(CLASS_NAMES)
    panels = scene_panels(d, "val", 3)
    assert panels["rgb"].shape == (32, 32, 3) and panels["normal"].min() >= 0 and panels["depth_zbuffer"].ndim == 2


def test_buildings_do_not_overlap(default_data):
    b = default_data.info["buildings"]
    assert set(b) == {"env0", "env1", "val", "test"} and all(len(v) == 4 for v in b.values())
    ids = [i for v in b.values() for i in v]
    assert len(ids) == len(set(ids))
    cfg = ScenesConfig()
    palettes = {i: _style(cfg.data_seed, i, cfg).palette for i in ids}
    assert len(set(palettes.values())) == len(ids)  # every building has its own style


def test_confounder_strength_by_environment(default_data):
    conf = default_data.info["confound"]
    e0, e1, va, te = (conf[k] for k in ("env0", "env1", "val", "test"))
    assert e0["strength"] == 0.9 and e1["strength"] == 0.7 and va["strength"] == te["strength"] == 0.0
    assert e0["corr"] > e1["corr"] > 0.5
    assert abs(va["corr"]) < 0.1 and abs(te["corr"]) < 0.1
    for c, p in ((e0, 0.9), (e1, 0.7), (va, 0.0), (te, 0.0)):
        assert c["agree"] == pytest.approx(p + (1 - p) / 3, abs=0.04)
        assert c["n_objects"] > 600
    assert e0["mean_z"]["sphere"] < e0["mean_z"]["cylinder"] < e0["mean_z"]["box"]

    # the shortcut is in the pixels too: sphere pixels are nearer than box pixels in training, not in test
    def pixel_gap(s):
        seg, dep = s.y["segment_semantic"], s.y["depth_zbuffer"][:, 0]
        return np.nanmean(dep[seg == BOX]) - np.nanmean(dep[seg == SPHERE])

    assert pixel_gap(default_data.train_envs["env0"]) > 1.0
    assert abs(pixel_gap(default_data.test)) < 0.35


def test_confound_stats_on_known_objects():
    cls = np.array([[SPHERE, BOX, -1], [CYLINDER, SPHERE, BOX]])
    z = np.array([[1.7, 3.9, np.nan], [2.9, 3.5, 1.7]])
    st = confound_stats(cls, z)
    assert st["n_objects"] == 5 and st["agree"] == pytest.approx(3 / 5)
    assert st["corr"] == pytest.approx(np.corrcoef([0, 2, 1, 0, 2], [1.7, 3.9, 2.9, 3.5, 1.7])[0, 1], abs=1e-4)


def test_determinism_subset_and_bad_task():
    small = dict(buildings_per_env=2, images_per_building=8, n_val=12, n_test=12, val_buildings=2, test_buildings=3)
    a = build_scenes(ScenesConfig(**small, tasks=("depth_zbuffer", "segment_semantic")))
    b = build_scenes(ScenesConfig(**small, tasks=("depth_zbuffer", "segment_semantic")))
    c = build_scenes(ScenesConfig(**small, tasks=("depth_zbuffer", "segment_semantic"), data_seed=1))
    assert [t.name for t in a.tasks] == ["depth_zbuffer", "segment_semantic"]
    assert set(a.val.y) == {"depth_zbuffer", "segment_semantic"}
    for e in ("env0", "env1"):
        np.testing.assert_array_equal(a.train_envs[e].x, b.train_envs[e].x)
        np.testing.assert_array_equal(a.train_envs[e].y["depth_zbuffer"], b.train_envs[e].y["depth_zbuffer"])
    np.testing.assert_array_equal(a.test.y["segment_semantic"], b.test.y["segment_semantic"])
    assert not np.array_equal(a.train_envs["env0"].x, c.train_envs["env0"].x)
    assert len(a.test) == 12 and a.info["buildings"]["test"] == [6, 7, 8]
    three = build_scenes(ScenesConfig(**small, env_strengths=(0.9, 0.7, 0.5), tasks=("normal",)))
    assert list(three.train_envs) == ["env0", "env1", "env2"]
    with pytest.raises(ValueError, match="valid: .*segment_semantic.*edge_texture"):
        build_scenes(ScenesConfig(**small, tasks=("depth", "normal")))
    with pytest.raises(ValueError, match="strength"):
        render_scenes(2, STYLE, np.random.default_rng(0), 32, 1.5)


def test_building_style_is_a_plain_value():
    st = BuildingStyle(palette=((0.5, 0.5, 0.5),) * 5, light=(0.0, 1.0, 0.0))
    out = render_scenes(3, st, np.random.default_rng(0), 16, 0.0)
    assert out["rgb"].shape == (3, 3, 16, 16)
    assert out["object_class"].shape == (3, 4) and out["object_z"].dtype == np.float32
    empty = render_scenes(0, st, np.random.default_rng(0), 16, 0.0)
    assert empty["rgb"].shape == (0, 3, 16, 16) and empty["segment_semantic"].shape == (0, 16, 16)
    with pytest.raises(ValueError, match="empty"):
        build_scenes(ScenesConfig(images_per_building=0, n_val=8, n_test=8))


def test_depth_agreement_and_shortcut_accuracy_by_hand():
    from mtcrl_lite.data.scenes import depth_agreement, shortcut_accuracy

    # classes: floor 0, wall 1, sphere 2 (near: 1.6-2.4 m), cylinder 3 (middle: 2.4-3.2), box 4 (far: 3.2-4.0)
    seg = np.array([[0, 2, 2], [3, 4, 4]])
    depth = np.array([[1.0, 2.0, 3.5], [2.8, 3.9, np.nan]])
    assert depth_agreement(seg, depth).tolist() == [[-1, 1, 0], [1, 1, -1]]
    pred = np.array([[0, 2, 4], [3, 2, 4]])  # right on two agreeing pixels, wrong on one; wrong on the other
    acc = shortcut_accuracy(pred, seg, depth)
    assert acc == {"acc_agree": pytest.approx(2 / 3), "acc_disagree": 0.0, "gap": pytest.approx(2 / 3)}
