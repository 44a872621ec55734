"""Synthetic indoor scenes: the dense stand-in for Taskonomy / NYUv2 / CityScapes (ours; stand_in=True).

Real dense datasets cannot be fetched here (DATA.md), so this module renders small rooms with numpy (vectorised
ray casting, one ray per pixel) and derives EXACT per-pixel labels for the five Taskonomy tasks of Standley et
al. (2020) from the same geometry. Every output of it is labelled "synthetic stand-in (scenes)".

Geometry (all lengths in metres)
--------------------------------
World frame: x right, y up, z forward (horizontal), the floor is the plane y = 0. The pinhole camera sits at
(0, h, 0), pitched down by an angle theta about the x axis, with a square field of view `FOV_DEG` (55 deg).
Camera frame (OpenCV convention): x right, y down, z forward along the optical axis; pixel (i, j) (row i,
column j) of an S x S image looks along d = ((j + 0.5 - S/2) / f, (i + 0.5 - S/2) / f, 1), f = (S/2) / tan(FOV/2).
Since d has z = 1, the ray parameter t of a hit IS its z-buffer depth.

A room is the floor plus three infinite walls: the back wall z = D and the side walls x = -W/2 and x = +W/2 (no
ceiling: rays going up meet a wall). Objects stand on the floor, 2 to 4 per image (`MAX_OBJECTS` slots), of
size r in [0.3, 0.55] m whatever their class, one per lateral lane of the view (they may still touch):

    class 0 floor      plane y = 0
    class 1 wall       back wall and both side walls
    class 2 sphere     centre (x, r, z), radius r
    class 3 cylinder   vertical axis, radius r, half-height a, centre (x, a, z)
    class 4 box        cuboid with half-extents (ex, ey, ez), rotated by a yaw about the vertical axis

Labels (per pixel, from the nearest hit over all primitives)
-----------------------------------------------------------
* ``segment_semantic`` int64 (n, H, W): the class above. Every pixel is labelled (the ignore value -1 is never
  emitted, but it is the convention of tasks.Task).
* ``depth_zbuffer`` float32 (n, 1, H, W): z-buffer depth in metres (camera-frame z of the hit point). NaN marks
  "missing depth" as a real sensor returns it: (a) grazing surfaces, where the angle between the ray and the
  surface is under `GRAZING_DEG` (2.9 deg: |cos(ray, normal)| < 0.05), and (b) random dropout of a fraction
  `missing_depth` of the pixels (default 0.5 %).
* ``normal`` float32 (n, 3, H, W): the unit surface normal in the camera frame (x right, y down, z forward), so
  visible surfaces have a negative z component; exact everywhere (never NaN), as rendered from a mesh.
* ``edge_texture`` float32 (n, 1, H, W) in {0, 0.5, 1}: 1 on occlusion edges, 0.5 on crease / contact edges.
  Each pixel carries a face (a primitive, and for boxes the face, for cylinders side or top). A pixel is on an
  edge if a 4-neighbour shows another face and the pixel is the nearer of the two (so edges are one pixel thick,
  on the occluding side). The edge is a crease (0.5) where the two faces meet: two room planes (wall/floor and
  wall/wall corners), two faces of one object (box edges, a cylinder's rim), an object and the floor within
  CONTACT_PX = 2 pixel footprints (t / f metres) of the floor (its contact), two objects less than 10 % apart in
  depth; every other face change is an occlusion (1) (`edge_map`). (Taskonomy's edge_texture is a 2-D texture
  edge map; here the name carries the geometric edges, which are exact.)
* ``keypoints2d`` float32 (n, 1, H, W) in [0, 1]: a max of Gaussian blobs (sigma = S/32 pixels) at the
  projections of the visible keypoints: the 8 corners of every box, 4 top-rim and 4 bottom-rim points of every
  cylinder, the point of every sphere nearest to the camera, and the two back corners of the floor. A keypoint
  is visible if it projects into the image and no object is hit before it along its own ray (an exact ray cast,
  `project_keypoints`).
* ``rgb`` uint8 (n, 3, H, W): Lambertian shading ambient + (1 - ambient) max(0, n . L) of a per-class base colour
  from the building's palette, times a per-object tint, times a floor checker texture, plus pixel noise, gamma
  2.2. There are no shadows.

Buildings, environments and the confounder
--------------------------------------------
A building (`BuildingStyle`, drawn by `sample_style`) fixes the palette (a base palette rotated about the grey
axis by a random hue angle plus per-class jitter), the light direction, the ambient level, the room size
(W in [4, 6], D in [5.5, 8]), the camera height (1.3 - 1.7 m, +-0.1 per image) and pitch (18 - 28 deg, +-2 per
image),
the floor tile size and the texture contrast. Training buildings are grouped into environments
(`buildings_per_env` each); validation and test use further, unseen buildings.

Confounder (class <-> depth): each object is placed at a horizontal distance z (world z of its centre) in
[Z_NEAR, Z_FAR] = [1.6, 4.0] m, cut into three equal bins near / middle / far. Every object class prefers one
bin: sphere -> near, cylinder -> middle, box -> far (`PREFERRED_BIN`). In an environment of strength p an
object's class is uniform; with probability p its z is uniform in the preferred bin of its class, otherwise
uniform over [Z_NEAR, Z_FAR]. Hence P(bin = preferred bin) = p + (1 - p) / 3; strength 0 (validation and test)
makes class and depth independent. Object size, lane and colour do not depend on the class, so a model can
read the class from the shape (causal), or from how far / how big / how high in the image the object
is (spurious): a shared encoder lets the segmentation head use depth cues and the depth head use class cues.
`info["confound"]` measures it per environment and split on the generated objects:
  corr   Pearson correlation between the preferred-bin index of the class (0, 1, 2) and z; 0 if independent;
  agree  fraction of objects whose z lies in the preferred bin of their class (chance 1/3);
  mean_z mean z per object class.
At the defaults (seed 0, about 1500 objects per environment, 780 per split):
    env0 (p=0.9) corr 0.844 agree 0.937    env1 (p=0.7) corr 0.656 agree 0.808
    val  (p=0)   corr -0.021 agree 0.327   test (p=0)   corr 0.015 agree 0.347
(expected agree: 0.933, 0.800, 0.333). In the pixels: box pixels are on average 1.4 m deeper than sphere pixels
in env0, but not in test.

Defaults (ScenesConfig): 32 x 32 images; 2 training environments (p = 0.9, 0.7) of 4 buildings x 128 images
(1024 training images), 256 validation images from 4 other buildings, 256 test images from 4 more. Building
all 1536 takes about 0.8 s on one CPU core; render_scenes makes about 1800 images/s at 32 x 32 and 460 at
64 x 64 (benchmarks/scenes.py). Building ids are 0.. in the order env0, env1, ..., val, test; building b draws its
style from default_rng([seed, 0, b]) and its images from default_rng([seed, 1, b]), so changing n_val or n_test
does not change the training images.
Styles (ScenesConfig.style, `STYLES`): "taskonomy" is everything above. "nyuv2" relabels the same rooms with
NYUv2's 13 classes (window and picture regions on the walls) and tasks segmentation / depth / normal;
"cityscapes" draws streets (wide, deep "rooms" whose walls are facades, sky above a per-building facade height
with no depth, grass verges) with CityScapes' 7 categories and tasks segmentation / depth = 1 / z; see SceneStyle.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from mtcrl_lite.core.tasks import Task
from mtcrl_lite.data.base import ArraySplit, MTLData

CLASS_NAMES = ("floor", "wall", "sphere", "cylinder", "box")
N_CLASSES = len(CLASS_NAMES)
FLOOR, WALL, SPHERE, CYLINDER, BOX = range(N_CLASSES)
OBJECT_CLASSES = (SPHERE, CYLINDER, BOX)
PREFERRED_BIN = {SPHERE: 0, CYLINDER: 1, BOX: 2}  # near, middle, far
Z_NEAR, Z_FAR, N_BINS = 1.6, 4.0, 3
BIN_EDGES = np.linspace(Z_NEAR, Z_FAR, N_BINS + 1)
MAX_OBJECTS = 4
N_PLANES = 4  # floor, back wall, left wall, right wall
FOV_DEG = 55.0
GRAZING_COS = 0.05  # |cos(ray, normal)| below this: depth missing
GRAZING_DEG = math.degrees(math.asin(GRAZING_COS))
OCCLUSION_JUMP = 0.10  # two objects this close in depth meet (crease)
CONTACT_PX = 2.0  # object pixels this many footprints above the floor touch it
_EPS = 1e-9

TASKS = {
    "segment_semantic": Task("segment_semantic", "segmentation", N_CLASSES, "miou"),
    "depth_zbuffer": Task("depth_zbuffer", "depth", 1, "abs_err"),
    "normal": Task("normal", "normal", 3, "mean_angle"),
    "keypoints2d": Task("keypoints2d", "pixel", 1, "l1"),
    "edge_texture": Task("edge_texture", "pixel", 1, "l1"),
}
TASK_NAMES = tuple(TASKS)

# Base colours (linear RGB) of floor, wall, sphere, cylinder, box, before a building's hue rotation and jitter.
BASE_PALETTE = np.array(
    [[0.55, 0.42, 0.30], [0.75, 0.74, 0.68], [0.85, 0.25, 0.20], [0.25, 0.70, 0.30], [0.22, 0.40, 0.85]]
)


@dataclass(frozen=True)
class SceneStyle:
    """What one benchmark style (ScenesConfig.style) changes: the label space, the geometry's ranges, the tasks.

    The renderer itself is the same for every style (floor, three walls, spheres / cylinders / boxes); a style maps
    what a ray hits to its own classes (`labels_of`), draws rooms, cameras and objects from its own ranges and
    object scale, and keeps the class-depth confounder with its own [z_near, z_far]."""

    name: str
    class_names: tuple[str, ...]
    palette: tuple  # (len(class_names), 3) base colours by output class
    floor: int  # output class of the floor, the walls, each object class
    wall: int
    objects: tuple[tuple[int, int], ...]  # (renderer object class, output class)
    z_range: tuple[float, float] = (Z_NEAR, Z_FAR)
    object_scale: float = 1.0
    room_width: tuple[float, float] = (4.0, 6.0)
    room_depth: tuple[float, float] = (5.5, 8.0)
    cam_height: tuple[float, float] = (1.3, 1.7)
    pitch_deg: tuple[float, float] = (18.0, 28.0)
    tasks: tuple[tuple[str, str, str], ...] = ()  # (task, renderer key, metric); () = the five Taskonomy tasks
    inverse_depth: bool = False  # the depth task holds 1 / z-buffer depth (CityScapes' disparity)

    @property
    def bin_edges(self) -> np.ndarray:
        return np.linspace(self.z_range[0], self.z_range[1], N_BINS + 1)

    def object_label(self, k: int) -> int:
        return dict(self.objects)[k]


STYLES = {
    "taskonomy": SceneStyle(
        "taskonomy",
        CLASS_NAMES,
        tuple(map(tuple, BASE_PALETTE)),
        FLOOR,
        WALL,
        ((SPHERE, SPHERE), (CYLINDER, CYLINDER), (BOX, BOX)),
    ),
    # NYUv2's 13 classes (nyuv2.CLASS_NAMES); a window on the back wall and a picture on each side wall
    "nyuv2": SceneStyle(
        "nyuv2",
        (
            "bed",
            "books",
            "ceiling",
            "chair",
            "floor",
            "furniture",
            "objects",
            "picture",
            "sofa",
            "table",
            "tv",
            "wall",
            "window",
        ),
        (
            (0.60, 0.45, 0.55),
            (0.55, 0.30, 0.20),
            (0.90, 0.90, 0.88),
            (0.25, 0.70, 0.30),
            (0.55, 0.42, 0.30),
            (0.45, 0.35, 0.25),
            (0.85, 0.25, 0.20),
            (0.30, 0.30, 0.65),
            (0.50, 0.50, 0.60),
            (0.22, 0.40, 0.85),
            (0.10, 0.10, 0.12),
            (0.75, 0.74, 0.68),
            (0.80, 0.92, 0.98),
        ),
        floor=4,
        wall=11,
        objects=((SPHERE, 6), (CYLINDER, 3), (BOX, 9)),
        tasks=(
            ("segmentation", "segment_semantic", "miou"),
            ("depth", "depth_zbuffer", "abs_err"),
            ("normal", "normal", "mean_angle"),
        ),
    ),
    # CityScapes' 7 categories (cityscapes.CLASS_NAMES): a street between two facades, sky above them, a verge of
    # grass along each facade; people (spheres), poles (cylinders) and cars (boxes) on the road
    "cityscapes": SceneStyle(
        "cityscapes",
        ("flat", "construction", "object", "nature", "sky", "human", "vehicle"),
        (
            (0.40, 0.38, 0.40),
            (0.70, 0.55, 0.45),
            (0.75, 0.70, 0.20),
            (0.25, 0.60, 0.20),
            (0.55, 0.70, 0.95),
            (0.85, 0.25, 0.20),
            (0.22, 0.40, 0.85),
        ),
        floor=0,
        wall=1,
        objects=((SPHERE, 5), (CYLINDER, 2), (BOX, 6)),
        z_range=(4.0, 16.0),
        object_scale=2.5,
        room_width=(10.0, 16.0),
        room_depth=(40.0, 70.0),
        cam_height=(1.2, 1.6),
        pitch_deg=(2.0, 8.0),
        tasks=(("segmentation", "segment_semantic", "miou"), ("depth", "depth_zbuffer", "abs_err")),
        inverse_depth=True,
    ),
}
WINDOW_BOX = (0.25, 1.0, 2.0)  # nyuv2: |x| < 0.25 W and 1.0 <= y <= 2.0 on the back wall
PICTURE_BOX = (0.9, 1.7, 4.5, 6.5)  # nyuv2: y in [0.9, 1.7], z in [4.5, 6.5] on a side wall
VERGE = 1.0  # cityscapes: floor within 1 m of a facade is grass (nature)


def get_style(name: str) -> SceneStyle:
    if name not in STYLES:
        raise ValueError(f"unknown scenes style {name!r}; valid: {tuple(STYLES)} (data.style)")
    return STYLES[name]


def labels_of(ray: dict, style: BuildingStyle, spec: SceneStyle) -> np.ndarray:
    """(n, P) output class of every pixel: the renderer's class mapped by `spec`, plus the style's regions
    (nyuv2: window, picture; cityscapes: sky above the facades, grass verges)."""
    cls = ray["cls"]
    if spec.name == "taskonomy":
        return cls
    lut = np.zeros(N_CLASSES, np.int64)
    lut[FLOOR], lut[WALL] = spec.floor, spec.wall
    for k, v in spec.objects:
        lut[k] = v
    out = lut[cls]
    p, prim = ray["point"], ray["prim"]
    if spec.name == "nyuv2":
        fx, y0, y1 = WINDOW_BOX
        out[(prim == 1) & (np.abs(p[..., 0]) < fx * style.room_width) & (p[..., 1] >= y0) & (p[..., 1] <= y1)] = 12
        a0, a1, z0, z1 = PICTURE_BOX
        out[
            ((prim == 2) | (prim == 3)) & (p[..., 1] >= a0) & (p[..., 1] <= a1) & (p[..., 2] >= z0) & (p[..., 2] <= z1)
        ] = 7
    elif spec.name == "cityscapes":
        out[(prim == 0) & (np.abs(p[..., 0]) > style.room_width / 2 - VERGE)] = 3
        out[(prim >= 1) & (prim < N_PLANES) & (p[..., 1] > style.facade_height)] = 4
    return out


@dataclass(frozen=True)
class BuildingStyle:
    """What a building fixes for all of its images (see the module docstring)."""

    palette: tuple  # (N_CLASSES, 3) linear RGB in [0, 1], as nested tuples
    light: tuple[float, float, float]  # unit vector towards the light, world frame
    ambient: float = 0.35
    room_width: float = 5.0  # W: side walls at x = -W/2, +W/2
    room_depth: float = 6.5  # D: back wall at z = D
    cam_height: float = 1.5
    pitch_deg: float = 20.0
    tile: float = 0.5  # floor checker tile size (m)
    texture: float = 0.08  # checker contrast (relative)
    noise: float = 0.02  # pixel noise sd (linear RGB)
    jitter: float = 1.0  # per-image camera jitter scale (0: every image of the building has one camera)
    facade_height: float = 0.0  # cityscapes style: walls above this height are sky (0: not drawn)


def _rot_hue(colors: np.ndarray, angle: float) -> np.ndarray:
    """Rotate RGB colours about the grey axis by `angle` radians (Rodrigues)."""
    k = np.ones(3) / math.sqrt(3.0)
    c, s = math.cos(angle), math.sin(angle)
    return colors * c + np.cross(k, colors) * s + np.outer(colors @ k, k) * (1 - c)


def sample_style(
    rng: np.random.Generator, hue_shift: float = 0.6, color_jitter: float = 0.06, spec: SceneStyle | None = None
) -> BuildingStyle:
    """A random building: palette = the style's base palette (BASE_PALETTE) rotated by a hue angle in
    [-hue_shift, hue_shift] rad plus per-class N(0, color_jitter) jitter; light from above at a random azimuth;
    room, camera, texture drawn from the style's ranges (and, for cityscapes, the facade height in [6, 15] m)."""
    spec = spec or STYLES["taskonomy"]
    pal = _rot_hue(np.asarray(spec.palette, dtype=float), rng.uniform(-hue_shift, hue_shift))
    pal = np.clip(pal + rng.normal(0, color_jitter, pal.shape), 0.05, 0.95)
    light = np.array([rng.uniform(-1, 1), rng.uniform(0.8, 1.6), rng.uniform(-1.2, 0.3)])
    light /= np.linalg.norm(light)
    style = BuildingStyle(
        palette=tuple(map(tuple, pal.round(6))),
        light=tuple(light.tolist()),
        ambient=float(rng.uniform(0.25, 0.45)),
        room_width=float(rng.uniform(*spec.room_width)),
        room_depth=float(rng.uniform(*spec.room_depth)),
        cam_height=float(rng.uniform(*spec.cam_height)),
        pitch_deg=float(rng.uniform(*spec.pitch_deg)),
        tile=float(rng.uniform(0.35, 0.8)),
        texture=float(rng.uniform(0.04, 0.12)),
    )
    if spec.name == "cityscapes":
        style = dataclasses.replace(style, facade_height=float(rng.uniform(6.0, 15.0)))
    return style


# ----------------------------------------------------------------------------------------------------------------
# Layouts: the parameters of n scenes, one row per image (what the renderer needs; hand-settable in tests)


@dataclass
class Layout:
    """n scenes. Object slots with cls = -1 are empty. Arrays are float64 unless stated."""

    cam_height: np.ndarray  # (n,)
    pitch: np.ndarray  # (n,) radians, > 0 looks down
    room_width: np.ndarray  # (n,)
    room_depth: np.ndarray  # (n,)
    cls: np.ndarray  # (n, M) int64: SPHERE, CYLINDER, BOX or -1
    center: np.ndarray  # (n, M, 3) world centre
    half: np.ndarray  # (n, M, 3) half-extents (sphere: r, r, r; cylinder: r, a, r; box: ex, ey, ez)
    yaw: np.ndarray  # (n, M) radians about +y
    tint: np.ndarray  # (n, M, 3) per-object colour factor

    def __len__(self) -> int:
        return len(self.cls)

    def take(self, sl) -> Layout:
        return Layout(**{k: v[sl] for k, v in vars(self).items()})

    @classmethod
    def single(
        cls,
        objects=(),
        cam_height: float = 1.5,
        pitch_deg: float = 20.0,
        room_width: float = 5.0,
        room_depth: float = 6.5,
    ) -> Layout:
        """One hand-set scene; objects = [(class, centre (x, y, z), half-extents (3,), yaw), ...] (at most
        MAX_OBJECTS; a sphere's radius is half[0], a cylinder's radius half[0] and half-height half[1])."""
        if len(objects) > MAX_OBJECTS:
            raise ValueError(f"at most {MAX_OBJECTS} objects, got {len(objects)}")
        c = np.full((1, MAX_OBJECTS), -1, np.int64)
        center, half = np.zeros((1, MAX_OBJECTS, 3)), np.ones((1, MAX_OBJECTS, 3))
        yaw = np.zeros((1, MAX_OBJECTS))
        for k, (kind, ce, ha, ya) in enumerate(objects):
            if kind not in OBJECT_CLASSES:
                raise ValueError(f"object class must be one of {OBJECT_CLASSES} (sphere, cylinder, box), got {kind}")
            c[0, k], center[0, k], half[0, k], yaw[0, k] = kind, ce, ha, ya
        return cls(
            cam_height=np.array([cam_height], float),
            pitch=np.radians([pitch_deg]),
            room_width=np.array([room_width], float),
            room_depth=np.array([room_depth], float),
            cls=c,
            center=center,
            half=half,
            yaw=yaw,
            tint=np.ones((1, MAX_OBJECTS, 3)),
        )


def sample_layouts(
    n: int, style: BuildingStyle, rng: np.random.Generator, strength: float, spec: SceneStyle | None = None
) -> Layout:
    """Random scenes of one building with class-depth confounder strength `strength` (module docstring); the
    style `spec` sets the confounder's distance range and scales the objects."""
    spec = spec or STYLES["taskonomy"]
    z_near, z_far = spec.z_range
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"confounder strength must be in [0, 1], got {strength}")
    m = MAX_OBJECTS
    jit = style.jitter
    cam_h = style.cam_height + jit * rng.uniform(-0.1, 0.1, n)
    pitch = np.radians(style.pitch_deg + jit * rng.uniform(-2.0, 2.0, n))
    n_obj = rng.integers(2, m + 1, n)
    present = np.arange(m)[None, :] < n_obj[:, None]
    cls = np.asarray(OBJECT_CLASSES)[rng.integers(0, len(OBJECT_CLASSES), (n, m))]
    pref = np.vectorize(PREFERRED_BIN.get, otypes=[np.int64])(cls)
    width = (z_far - z_near) / N_BINS
    z_pref = z_near + (pref + rng.random((n, m))) * width
    z_free = rng.uniform(z_near, z_far, (n, m))
    z = np.where(rng.random((n, m)) < strength, z_pref, z_free)
    # lateral position: one lane of the view per slot (a random permutation), so objects rarely interpenetrate
    lanes = np.argsort(rng.random((n, m)), axis=1)
    u = -1 + (2 * lanes + 1) / m + rng.uniform(-0.25, 0.25, (n, m)) * (2 / m)
    r = rng.uniform(0.3, 0.55, (n, m))
    if spec.object_scale != 1.0:
        r = r * spec.object_scale
    half = np.stack([r, r, r], -1)
    cyl, box = cls == CYLINDER, cls == BOX
    half[cyl, 0] = half[cyl, 2] = 0.8 * r[cyl]
    half[cyl, 1] = r[cyl] * rng.uniform(0.9, 1.6, (n, m))[cyl]
    boxdims = r[..., None] * rng.uniform([0.75, 0.6, 0.75], [1.15, 1.1, 1.15], (n, m, 3))
    half[box] = boxdims[box]
    reach = np.linalg.norm(half[..., [0, 2]], axis=-1)  # horizontal radius that bounds the object
    x = u * math.tan(math.radians(FOV_DEG / 2)) * z * 0.85
    x = np.clip(x, -style.room_width / 2 + reach + 0.05, style.room_width / 2 - reach - 0.05)
    center = np.stack([x, half[..., 1], z], -1)
    yaw = rng.uniform(0, math.pi / 2, (n, m))
    tint = rng.uniform(0.8, 1.2, (n, m, 1)) * rng.uniform(0.92, 1.08, (n, m, 3))
    return Layout(
        cam_height=cam_h,
        pitch=pitch,
        room_width=np.full(n, style.room_width),
        room_depth=np.full(n, style.room_depth),
        cls=np.where(present, cls, -1).astype(np.int64),
        center=center,
        half=half,
        yaw=yaw,
        tint=tint,
    )


# ----------------------------------------------------------------------------------------------------------------
# Ray casting


def camera_rays(size: int) -> np.ndarray:
    """(size*size, 3) camera-frame ray directions with z = 1, row-major over (row, column)."""
    f = (size / 2) / math.tan(math.radians(FOV_DEG / 2))
    c = (np.arange(size) + 0.5 - size / 2) / f
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel(), np.ones(size * size)], -1)


def camera_rotation(pitch: np.ndarray) -> np.ndarray:
    """(n, 3, 3) R with world = R @ camera (columns: the camera's x, y (down), z axes in world coordinates)."""
    s, c = np.sin(pitch), np.cos(pitch)
    zero, one = np.zeros_like(pitch), np.ones_like(pitch)
    return np.stack([np.stack([one, zero, zero], -1), np.stack([zero, -c, -s], -1), np.stack([zero, -s, c], -1)], -1)


def _yaw_rotate(v: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) about +y by yaw (broadcast against v[..., 0])."""
    c, s = np.cos(yaw), np.sin(yaw)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([c * x + s * z, np.broadcast_to(y, np.broadcast_shapes(y.shape, c.shape)), c * z - s * x], -1)


def _inf_where(cond, t):
    return np.where(cond & (t > _EPS), t, np.inf)


# The intersection routines take one row per object: o = camera centre minus object centre, components (N, 1);
# d = ray directions of the object's image, components (N, P); half-extents (N, 1). They return t (N, P).


def _hit_sphere(ox, oy, oz, dx, dy, dz, hx, hy, hz, yaw):
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    disc = b * b - a * (ox * ox + oy * oy + oz * oz - hx * hx)
    t = (-b - np.sqrt(np.maximum(disc, 0))) / a
    return _inf_where(disc >= 0, t)


def _hit_cylinder(ox, oy, oz, dx, dy, dz, hx, hy, hz, yaw):
    a = np.maximum(dx * dx + dz * dz, 1e-300)
    b = ox * dx + oz * dz
    disc = b * b - a * (ox * ox + oz * oz - hx * hx)
    ts = (-b - np.sqrt(np.maximum(disc, 0))) / a
    t_side = _inf_where((disc >= 0) & (np.abs(oy + ts * dy) <= hy), ts)
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = (hy - oy) / dy  # top cap plane y = c_y + a
        px, pz = ox + tt * dx, oz + tt * dz
    t_top = _inf_where((dy < 0) & (px * px + pz * pz <= hx * hx), tt)
    return np.minimum(t_side, t_top)


def _hit_box(ox, oy, oz, dx, dy, dz, hx, hy, hz, yaw):
    c, s = np.cos(yaw), np.sin(yaw)  # local = rotation by -yaw
    tnear, tfar = None, None
    for o_, d_, h_ in ((c * ox - s * oz, c * dx - s * dz, hx), (oy, dy, hy), (c * oz + s * ox, c * dz + s * dx, hz)):
        inv = 1.0 / np.where(np.abs(d_) < 1e-300, 1e-300, d_)
        t1, t2 = (-h_ - o_) * inv, (h_ - o_) * inv
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        tnear = lo if tnear is None else np.maximum(tnear, lo)
        tfar = hi if tfar is None else np.minimum(tfar, hi)
    return _inf_where(tnear <= tfar, tnear)


_HIT = {SPHERE: _hit_sphere, CYLINDER: _hit_cylinder, BOX: _hit_box}


def object_hits(lay: Layout, dirs: np.ndarray) -> np.ndarray:
    """t (n, M, Q) of the rays from each image's camera along dirs (n, Q, 3) (world) to every object slot
    (inf: missed or empty slot)."""
    n = len(lay)
    o = np.stack([np.zeros(n), lay.cam_height, np.zeros(n)], -1)
    dx, dy, dz = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    t_obj = np.full(lay.cls.shape + (dirs.shape[1],), np.inf)
    for k, fn in _HIT.items():
        img, slot = np.nonzero(lay.cls == k)
        if len(img) == 0:
            continue
        rel = o[img] - lay.center[img, slot]  # (N, 3)
        h = lay.half[img, slot]
        t_obj[img, slot] = fn(
            *(rel[:, i : i + 1] for i in range(3)),
            dx[img],
            dy[img],
            dz[img],
            *(h[:, i : i + 1] for i in range(3)),
            lay.yaw[img, slot][:, None],
        )
    return t_obj


def raycast(lay: Layout, size: int) -> dict[str, np.ndarray]:
    """Nearest hit per pixel. Returns (n, P) arrays: t (z-buffer depth), prim (0-3 planes floor/back/left/right,
    4 + k object slot k), cls, face (face index within the primitive), and (n, P, 3): point, normal_world, ray
    (world direction), plus R (n, 3, 3)."""
    n = len(lay)
    R = camera_rotation(lay.pitch)
    dirs = camera_rays(size) @ R.transpose(0, 2, 1)  # (n, P, 3) world directions, camera z = 1
    o = np.stack([np.zeros(n), lay.cam_height, np.zeros(n)], -1)  # (n, 3)
    dx, dy, dz = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    W, D = lay.room_width[:, None], lay.room_depth[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        planes = [
            _inf_where(dy < 0, -o[:, 1:2] / dy),
            _inf_where(dz > 0, D / dz),
            _inf_where(dx < 0, (-W / 2) / dx),
            _inf_where(dx > 0, (W / 2) / dx),
        ]
    t_obj = object_hits(lay, dirs)
    tall = np.concatenate([np.stack(planes, 1), t_obj], 1)  # (n, 4 + M, P)
    prim = tall.argmin(1)
    t = tall.min(1)
    if not np.isfinite(t).all():
        raise RuntimeError("a ray left the room; check the room and camera parameters")
    p = o[:, None, :] + t[..., None] * dirs
    # normals and faces
    slot = np.clip(prim - N_PLANES, 0, None)
    ii = np.arange(n)[:, None]
    ocls = lay.cls[ii, slot]
    pcls = np.where(prim == 0, FLOOR, np.where(prim < N_PLANES, WALL, ocls))
    plane_n = np.array([[0, 1, 0], [0, 0, -1], [1, 0, 0], [-1, 0, 0]], dtype=float)
    nrm = plane_n[np.minimum(prim, N_PLANES - 1)]
    face = np.zeros_like(prim)
    c, h, yaw = lay.center[ii, slot], lay.half[ii, slot], lay.yaw[ii, slot]
    rel = p - c
    is_obj = prim >= N_PLANES
    # sphere
    m = is_obj & (pcls == SPHERE)
    nrm[m] = rel[m] / np.linalg.norm(rel[m], axis=-1, keepdims=True)
    # cylinder: top cap or side
    m = is_obj & (pcls == CYLINDER)
    top = np.abs(rel[..., 1] - h[..., 1]) <= 1e-9 * (1 + np.abs(h[..., 1]))
    mt, ms = m & top, m & ~top
    nrm[mt] = (0.0, 1.0, 0.0)
    side = rel[ms] * np.array([1.0, 0.0, 1.0])
    nrm[ms] = side / np.linalg.norm(side, axis=-1, keepdims=True)
    face[mt] = 1
    # box: the face whose slab the hit point lies on
    m = is_obj & (pcls == BOX)
    if m.any():
        pl = _yaw_rotate(rel[m], -yaw[m])
        q = pl / h[m]
        ax = np.abs(q).argmax(-1)
        sgn = np.sign(np.take_along_axis(q, ax[:, None], 1))[:, 0]
        nl = np.zeros_like(pl)
        nl[np.arange(len(ax)), ax] = sgn
        nrm[m] = _yaw_rotate(nl, yaw[m])
        face[m] = 2 * ax + (sgn > 0)
    return {"t": t, "prim": prim, "cls": pcls, "face": face, "point": p, "normal_world": nrm, "ray": dirs, "R": R}


# ----------------------------------------------------------------------------------------------------------------
# Label maps


def edge_map(
    prim: np.ndarray, face: np.ndarray, t: np.ndarray, height: np.ndarray, contact_tol: np.ndarray
) -> np.ndarray:
    """Edges in {0, 0.5, 1} from (n, H, W) maps: primitive ids (0-3 room planes, >= 4 objects), face index within
    the primitive, z-depth t, height y of the hit point and the contact tolerance (metres) of each pixel.

    A pixel is on an edge if a 4-neighbour shows another face and the pixel is the nearer of the two. The edge is
    a crease (0.5) if the two faces meet there: two room planes; two faces of one (convex) object; an object and
    the floor where the object's hit point is within `contact_tol` of the floor (its contact); two objects less
    than 10 % apart in depth (they touch or interpenetrate). Every other edge is an occlusion (1)."""
    out = np.zeros(prim.shape, dtype=np.float32)
    H, W = prim.shape[1:]
    pads = [np.pad(a, ((0, 0), (1, 1), (1, 1)), mode="edge") for a in (prim, face, t, height, contact_tol)]
    on_floor = (prim >= N_PLANES) & (height <= contact_tol)
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        pn, fn, tn, hn, cn = (a[:, 1 + di : 1 + di + H, 1 + dj : 1 + dj + W] for a in pads)
        on = ((pn != prim) | (fn != face)) & (t <= tn)
        crease = (
            ((prim < N_PLANES) & (pn < N_PLANES))
            | (pn == prim)
            | ((prim == 0) & (pn >= N_PLANES) & (hn <= cn))
            | ((pn == 0) & on_floor)
            | ((prim >= N_PLANES) & (pn >= N_PLANES) & (tn <= t * (1 + OCCLUSION_JUMP)))
        )
        out = np.maximum(out, np.where(on, np.where(crease, 0.5, 1.0), 0.0).astype(np.float32))
    return out


def keypoints_world(lay: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8 M + 2, 3) keypoints and (n, 8 M + 2) validity (module docstring), world frame."""
    n, m = lay.cls.shape
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    box = lay.center[:, :, None] + _yaw_rotate(signs * lay.half[:, :, None], lay.yaw[:, :, None])
    ang = lay.yaw[:, :, None] + np.arange(4) * (math.pi / 2)  # (n, M, 4)
    r, a = lay.half[:, :, None, 0], lay.half[:, :, None, 1]
    rim = lambda y: np.stack(
        [
            lay.center[:, :, None, 0] + r * np.cos(ang),
            np.broadcast_to(y, ang.shape),
            lay.center[:, :, None, 2] + r * np.sin(ang),
        ],
        -1,
    )
    cyl = np.concatenate([rim(lay.center[:, :, None, 1] + a), rim(lay.center[:, :, None, 1] - a)], 2)
    cam = np.stack([np.zeros(n), lay.cam_height, np.zeros(n)], -1)[:, None]
    to_cam = cam - lay.center
    front = lay.center + lay.half[..., :1] * to_cam / np.linalg.norm(to_cam, axis=-1, keepdims=True)
    sph = np.concatenate([front[:, :, None], np.zeros((n, m, 7, 3))], 2)
    k = lay.cls[..., None, None]
    pts = np.where(k == BOX, box, np.where(k == CYLINDER, cyl, sph))  # (n, M, 8, 3)
    valid = np.broadcast_to(lay.cls[..., None] >= 0, (n, m, 8)).copy()
    valid[..., 1:] &= lay.cls[..., None] != SPHERE
    room = np.stack(
        [
            np.stack([-lay.room_width / 2, np.zeros(n), lay.room_depth], -1),
            np.stack([lay.room_width / 2, np.zeros(n), lay.room_depth], -1),
        ],
        1,
    )
    return (
        np.concatenate([pts.reshape(n, 8 * m, 3), room], 1),
        np.concatenate([valid.reshape(n, 8 * m), np.ones((n, 2), bool)], 1),
    )


def project_keypoints(lay: Layout, R: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel (row, col) of every keypoint of keypoints_world (pixel centres at integers) and its visibility:
    it projects into the image and no object is hit before it on its own ray (an exact ray cast; walls cannot
    hide anything inside the room)."""
    n = len(lay)
    pts, valid = keypoints_world(lay)
    cam = np.stack([np.zeros(n), lay.cam_height, np.zeros(n)], -1)[:, None]
    pc = (pts - cam) @ R  # camera frame (R^T p, row vectors)
    f = (size / 2) / math.tan(math.radians(FOV_DEG / 2))
    z = np.maximum(pc[..., 2], 1e-6)
    col, row = f * pc[..., 0] / z + size / 2 - 0.5, f * pc[..., 1] / z + size / 2 - 0.5
    inside = (pc[..., 2] > 0.05) & (row > -0.5) & (row < size - 0.5) & (col > -0.5) & (col < size - 0.5)
    t_first = object_hits(lay, (pts - cam) / z[..., None]).min(1)  # rays with camera z = 1: t is depth
    return row, col, valid & inside & (t_first >= z * (1 - 1e-7) - 1e-9)


def keypoint_map(lay: Layout, R: np.ndarray, size: int) -> np.ndarray:
    """(n, H, W) float32: max over the visible keypoints of a Gaussian blob, sigma = size / 32 pixels."""
    n = len(lay)
    row, col, vis = project_keypoints(lay, R, size)
    sigma = size / 32
    g = np.arange(size, dtype=np.float64)
    out = np.zeros((n, size, size), dtype=np.float32)
    img, k = np.nonzero(vis)  # image-major order
    if len(img):
        gr = np.exp(-((g - row[img, k, None]) ** 2) / (2 * sigma**2))  # (N, H)
        gc = np.exp(-((g - col[img, k, None]) ** 2) / (2 * sigma**2))  # (N, W): separable Gaussian
        blobs = (gr[:, :, None] * gc[:, None, :]).astype(np.float32)
        first = np.flatnonzero(np.r_[True, img[1:] != img[:-1]])
        out[img[first]] = np.maximum.reduceat(blobs, first, axis=0)  # max over each image's keypoints
    return out


def shade(ray: dict, lay: Layout, style: BuildingStyle, rng: np.random.Generator, size: int) -> np.ndarray:
    """(n, 3, H, W) uint8 image: Lambertian shading of the palette colours, checker floor, noise, gamma 2.2."""
    n = len(lay)
    pal = np.asarray(style.palette, dtype=float)
    alb = pal[ray["cls"]]  # (n, P, 3)
    slot = np.clip(ray["prim"] - N_PLANES, 0, None)
    tint = lay.tint[np.arange(n)[:, None], slot]
    alb = np.where((ray["prim"] >= N_PLANES)[..., None], alb * tint, alb)
    p = ray["point"]
    check = (np.floor(p[..., 0] / style.tile) + np.floor(p[..., 2] / style.tile)) % 2
    alb = alb * np.where(ray["prim"] == 0, 1 + style.texture * (2 * check - 1), 1.0)[..., None]
    lam = np.clip(ray["normal_world"] @ np.asarray(style.light), 0, None)
    img = alb * (style.ambient + (1 - style.ambient) * lam)[..., None]
    img = img + rng.normal(0, style.noise, img.shape)
    img = np.clip(img, 0, 1) ** (1 / 2.2)
    return np.rint(img * 255).astype(np.uint8).reshape(n, size, size, 3).transpose(0, 3, 1, 2)


def render_layouts(
    lay: Layout,
    style: BuildingStyle,
    rng: np.random.Generator,
    size: int = 32,
    missing_depth: float = 0.005,
    chunk: int = 0,
    spec: SceneStyle | None = None,
) -> dict[str, np.ndarray]:
    """Render given layouts (module docstring lists the keys). `chunk` images at a time (0: automatic). With a
    style `spec` other than taskonomy, segment_semantic holds the style's classes (labels_of), the rgb is shaded
    with the style's palette by those classes, and the depth of sky pixels is missing (NaN)."""
    spec = spec or STYLES["taskonomy"]
    n = len(lay)
    chunk = chunk or max(1, 65536 // (size * size))
    parts = []
    for s in range(0, n, chunk):
        sub = lay.take(slice(s, s + chunk))
        m = len(sub)
        ray = raycast(sub, size)
        ray["cls"] = labels_of(ray, style, spec)
        t = ray["t"].reshape(m, size, size)
        n_cam = ray["normal_world"] @ ray["R"]  # R^T n, row vectors
        n_cam /= np.linalg.norm(n_cam, axis=-1, keepdims=True)
        cosi = np.abs((ray["normal_world"] * ray["ray"]).sum(-1)) / np.linalg.norm(ray["ray"], axis=-1)
        depth = np.where((cosi < GRAZING_COS) | (rng.random(cosi.shape) < missing_depth), np.nan, ray["t"])
        if spec.name == "cityscapes":
            depth[ray["cls"] == spec.class_names.index("sky")] = np.nan
        grid = lambda a: a.reshape(m, size, size)
        f = (size / 2) / math.tan(math.radians(FOV_DEG / 2))
        edges = edge_map(grid(ray["prim"]), grid(ray["face"]), t, grid(ray["point"][..., 1]), CONTACT_PX * t / f)
        parts.append(
            {
                "rgb": shade(ray, sub, style, rng, size),
                "segment_semantic": ray["cls"].reshape(m, size, size).astype(np.int64),
                "depth_zbuffer": depth.reshape(m, 1, size, size).astype(np.float32),
                "normal": n_cam.reshape(m, size, size, 3).transpose(0, 3, 1, 2).astype(np.float32),
                "keypoints2d": keypoint_map(sub, ray["R"], size)[:, None],
                "edge_texture": edges[:, None],
            }
        )
    if parts:
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    else:
        shapes = {
            "rgb": (np.uint8, (3,)),
            "segment_semantic": (np.int64, ()),
            "depth_zbuffer": (np.float32, (1,)),
            "normal": (np.float32, (3,)),
            "keypoints2d": (np.float32, (1,)),
            "edge_texture": (np.float32, (1,)),
        }
        out = {k: np.zeros((0, *c, size, size), dt) for k, (dt, c) in shapes.items()}
    out["object_class"] = lay.cls.copy()
    out["object_z"] = np.where(lay.cls >= 0, lay.center[..., 2], np.nan).astype(np.float32)
    return out


def render_scenes(
    n: int,
    style: BuildingStyle,
    rng: np.random.Generator,
    size: int = 32,
    strength: float = 0.0,
    missing_depth: float = 0.005,
    spec: SceneStyle | None = None,
) -> dict[str, np.ndarray]:
    """n random images of building `style` at confounder strength `strength`; pure given rng.

    Keys: rgb uint8 (n, 3, S, S); segment_semantic int64 (n, S, S); depth_zbuffer float32 (n, 1, S, S) with NaN
    = missing; normal float32 (n, 3, S, S); keypoints2d, edge_texture float32 (n, 1, S, S); and per object slot
    object_class int64 (n, MAX_OBJECTS) (-1 = empty) and object_z float32 (its horizontal distance, NaN = empty).
    """
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    lay = sample_layouts(n, style, rng, strength, spec)
    return render_layouts(lay, style, rng, size, missing_depth, spec=spec)


# ----------------------------------------------------------------------------------------------------------------
# Confounder measurement, config and builder


def confound_stats(obj_class: np.ndarray, obj_z: np.ndarray, spec: SceneStyle | None = None) -> dict:
    """Class-depth association of the objects (module docstring: corr, agree, mean_z, n_objects); obj_class holds
    the renderer's object classes, named and binned by the style `spec`."""
    spec = spec or STYLES["taskonomy"]
    keep = obj_class >= 0
    c, z = obj_class[keep], obj_z[keep].astype(np.float64)
    pref = np.vectorize(PREFERRED_BIN.get, otypes=[np.int64])(c) if len(c) else np.zeros(0, np.int64)
    bins = np.clip(np.searchsorted(spec.bin_edges, z, side="right") - 1, 0, N_BINS - 1)
    corr = float(np.corrcoef(pref, z)[0, 1]) if len(c) > 2 and pref.std() > 0 and z.std() > 0 else float("nan")
    return {
        "corr": round(corr, 4),
        "agree": round(float(np.mean(bins == pref)), 4) if len(c) else float("nan"),
        "mean_z": {
            spec.class_names[spec.object_label(k)]: round(float(z[c == k].mean()), 3)
            if (c == k).any()
            else float("nan")
            for k in OBJECT_CLASSES
        },
        "n_objects": int(len(c)),
    }


@dataclass
class ScenesConfig:
    """Data parameters of the synthetic scenes (all overridable with --set data.KEY=VALUE).

    Defaults: 32 x 32; 2 environments x 4 buildings x 128 images = 1024 training images; 256 validation images
    from 4 unseen buildings and 256 test images from 4 more; renders in about 0.5 s on one core."""

    size: int = 32  # H = W (64 for the larger geometry)
    tasks: tuple[str, ...] = TASK_NAMES
    env_strengths: tuple[float, ...] = (0.9, 0.7)  # class-depth confounder p, one training environment each
    buildings_per_env: int = 4
    images_per_building: int = 128  # training images per building
    val_strength: float = 0.0  # 0 = class and depth independent
    test_strength: float = 0.0
    n_val: int = 256
    n_test: int = 256
    val_buildings: int = 4
    test_buildings: int = 4
    missing_depth: float = 0.005  # random depth dropout (grazing pixels are always missing)
    hue_shift: float = 0.6  # max palette hue rotation per building (radians)
    data_seed: int = 0  # the data is fixed across training seeds unless changed
    style: str = "taskonomy"  # benchmark style: taskonomy, nyuv2 or cityscapes (STYLES)


def style_tasks(spec: SceneStyle) -> dict[str, Task]:
    """{task: Task} of a style: the five Taskonomy tasks, or the style's own (names as the real loader's)."""
    if not spec.tasks:
        return TASKS
    n_out = {"segment_semantic": len(spec.class_names), "depth_zbuffer": 1, "normal": 3}
    kind = {"segment_semantic": "segmentation", "depth_zbuffer": "depth", "normal": "normal"}
    return {t: Task(t, kind[key], n_out[key], metric) for t, key, metric in spec.tasks}


def style_labels(out: dict, spec: SceneStyle, tasks) -> dict[str, np.ndarray]:
    """The label arrays of `tasks` from a render: renamed for the style; CityScapes' depth is 1 / z (disparity)."""
    if not spec.tasks:
        return {t: out[t] for t in tasks}
    key = {t: k for t, k, _ in spec.tasks}
    y = {t: out[key[t]] for t in tasks}
    if spec.inverse_depth and "depth" in y:
        y["depth"] = (1.0 / y["depth"]).astype(np.float32)
    return y


def _style(seed: int, building: int, cfg: ScenesConfig) -> BuildingStyle:
    return sample_style(np.random.default_rng([seed, 0, building]), cfg.hue_shift, spec=get_style(cfg.style))


def _render_group(buildings: list[int], sizes: list[int], strength: float, cfg: ScenesConfig) -> dict:
    spec = get_style(cfg.style)
    outs = [
        render_scenes(
            k,
            _style(cfg.data_seed, b, cfg),
            np.random.default_rng([cfg.data_seed, 1, b]),
            cfg.size,
            strength,
            cfg.missing_depth,
            spec,
        )
        for b, k in zip(buildings, sizes)
    ]
    out = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    out["building"] = np.concatenate([np.full(k, b, np.int64) for b, k in zip(buildings, sizes)])
    return out


def build_scenes(cfg: ScenesConfig) -> MTLData:
    """Training environments env0, env1, ... (strengths cfg.env_strengths) and val / test from unseen buildings.

    cfg.style other than taskonomy: the style's classes and tasks; tasks left at the Taskonomy default mean all
    of the style's tasks (nyuv2: segmentation, depth, normal; cityscapes: segmentation, depth = 1 / z)."""
    spec = get_style(cfg.style)
    all_tasks = style_tasks(spec)
    names = tuple(all_tasks) if spec.tasks and tuple(cfg.tasks) == TASK_NAMES else tuple(cfg.tasks)
    unknown = [t for t in names if t not in all_tasks]
    if unknown or not names:
        raise ValueError(
            f"unknown scene tasks {unknown or list(names)} for style {cfg.style!r}; valid: {list(all_tasks)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate tasks in {names}")
    if not cfg.env_strengths:
        raise ValueError("env_strengths must name at least one training environment")
    tasks = [all_tasks[t] for t in names]
    next_b = 0
    groups = {}
    for e, p in enumerate(cfg.env_strengths):
        b = list(range(next_b, next_b + cfg.buildings_per_env))
        next_b += cfg.buildings_per_env
        groups[f"env{e}"] = (b, [cfg.images_per_building] * len(b), p)
    for name, n, nb, p in (
        ("val", cfg.n_val, cfg.val_buildings, cfg.val_strength),
        ("test", cfg.n_test, cfg.test_buildings, cfg.test_strength),
    ):
        nb = max(1, min(nb, n))
        b = list(range(next_b, next_b + nb))
        next_b += nb
        groups[name] = (b, [len(a) for a in np.array_split(np.arange(n), nb)], p)
    splits, confound = {}, {}
    for name, (b, sizes, p) in groups.items():
        out = _render_group(b, sizes, p, cfg)
        splits[name] = ArraySplit(out["rgb"], style_labels(out, spec, names))
        confound[name] = {"strength": p, **confound_stats(out["object_class"], out["object_z"], spec)}
    obj_names = {k: spec.class_names[spec.object_label(k)] for k in OBJECT_CLASSES}
    info = {
        "stand_in": True,
        "label": "synthetic stand-in (scenes)",
        "input": f"{cfg.size}x{cfg.size}",
        "class_names": list(spec.class_names),
        "object_classes": list(obj_names.values()),
        "preferred_bin": {obj_names[k]: ("near", "middle", "far")[v] for k, v in PREFERRED_BIN.items()},
        "depth_bins_m": spec.bin_edges.round(3).tolist(),
        "confound": confound,
        "confound_def": "corr = Pearson(preferred-bin index of the object's class, object distance z); "
        "agree = P(z in the preferred bin of its class), chance 1/3",
        "buildings": {name: g[0] for name, g in groups.items()},
    }
    if spec.name != "taskonomy":
        info.update(
            {
                "style": spec.name,
                "depth": "1 / z-buffer depth (disparity-like), NaN = sky or missing"
                if spec.inverse_depth
                else "z-buffer depth (m)",
            }
        )
    envs = {name: splits[name] for name in groups if name.startswith("env")}
    return MTLData("scenes", tasks, envs, splits["val"], splits["test"], info)


def scene_panels(data: MTLData, split: str = "env0", i: int = 0) -> dict[str, np.ndarray]:
    """Display-ready (H, W[, 3]) arrays of sample i of a split: rgb in [0, 1], the class map, depth, normals
    mapped to [0, 1] by (n + 1) / 2, keypoints, edges (only the tasks the data has)."""
    s = data.train_envs[split] if split in data.train_envs else getattr(data, split)
    x, y = s.load(np.array([i]))
    out = {"rgb": x[0].transpose(1, 2, 0).astype(np.float32) / 255.0}
    for t, v in y.items():
        v = v[0]
        if t == "normal":
            out[t] = (np.nan_to_num(v.transpose(1, 2, 0)) + 1) / 2
        elif v.ndim == 3:
            out[t] = v[0]
        else:
            out[t] = v
    return out


__all__ = [
    "BuildingStyle",
    "CLASS_NAMES",
    "STYLES",
    "SceneStyle",
    "get_style",
    "labels_of",
    "Layout",
    "N_CLASSES",
    "ScenesConfig",
    "TASKS",
    "build_scenes",
    "camera_rays",
    "camera_rotation",
    "confound_stats",
    "raycast",
    "render_layouts",
    "render_scenes",
    "sample_layouts",
    "sample_style",
    "scene_panels",
]


def depth_agreement(seg: np.ndarray, depth: np.ndarray, style: str = "taskonomy") -> np.ndarray:
    """Per pixel, whether the training shortcut holds there: 1 where an object pixel's z-buffer depth falls in its
    class's preferred bin (`PREFERRED_BIN`, `BIN_EDGES`), 0 where it falls in another bin, -1 for floor, wall,
    ignored or invalid-depth pixels. seg (..., H, W) int; depth (..., 1, H, W) or (..., H, W) in metres.
    (Pixel depth, not the object's centre distance that the confounder draws, so the split is approximate.)
    `style` (ScenesConfig.style): seg in that style's classes; for cityscapes `depth` is the inverse depth."""
    spec = get_style(style)
    seg = np.asarray(seg)
    depth = np.asarray(depth, dtype=np.float64).reshape(seg.shape)
    if spec.inverse_depth:
        with np.errstate(divide="ignore"):
            depth = np.where(depth > 0, 1.0 / depth, np.nan)
    pref = np.full(len(spec.class_names), -1)
    for k, b in PREFERRED_BIN.items():
        pref[spec.object_label(k)] = b
    bins = np.clip(np.searchsorted(spec.bin_edges, np.nan_to_num(depth, nan=-1.0), side="right") - 1, 0, N_BINS - 1)
    want = np.where(seg >= 0, pref[np.clip(seg, 0, None)], -1)
    return np.where((want < 0) | np.isnan(depth), -1, (bins == want).astype(np.int64))


def shortcut_accuracy(
    pred: np.ndarray, seg: np.ndarray, depth: np.ndarray, style: str = "taskonomy"
) -> dict[str, float]:
    """Segmentation accuracy on object pixels where the class-depth shortcut of training holds ("agree") and where
    it does not ("disagree"), and their gap: a model that reads depth to name objects has a large positive gap.
    pred: predicted classes (..., H, W)."""
    agree = depth_agreement(seg, depth, style)
    hit = np.asarray(pred) == np.asarray(seg)
    a, d = hit[agree == 1], hit[agree == 0]
    out = {
        "acc_agree": float(a.mean()) if a.size else float("nan"),
        "acc_disagree": float(d.mean()) if d.size else float("nan"),
    }
    out["gap"] = out["acc_agree"] - out["acc_disagree"]
    return out
