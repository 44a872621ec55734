"""NYUv2's scene-type manifest (ROOT/scene_types.csv) from the official files, for the split by scene type.

    python -m mtcrl_lite.data nyuv2-manifest nyu_depth_v2_labeled.mat splits.mat ROOT

* `nyu_depth_v2_labeled.mat` (the official labelled set, MATLAB v7.3 = HDF5): `sceneTypes`, a 1 x 1449 cell of
  strings such as "bedroom" or "living_room", one per labelled frame.
* `splits.mat` (from the official toolbox page, MATLAB v5): `trainNdxs` (795) and `testNdxs` (654), 1-based frame
  numbers of the standard split.

The manifest gives MTAN's `train/{i}.npy` the scene type of frame trainNdxs[i] and `val/{i}.npy` that of
testNdxs[i]: MTAN's two folders hold the standard 795/654 split, and this takes their files to be in the order
of the split's index lists. That order is our reading of the preprocessing, not something MTAN documents: check it
on a few images (e.g. that val/0.npy shows the room of frame testNdxs[0]) before trusting the split by scene type.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mtcrl_lite.data import mtan

N_FRAMES, N_TRAIN, N_TEST = 1449, 795, 654


def read_scene_types(path) -> list[str]:
    """The `sceneTypes` strings of the official labelled .mat (HDF5), in frame order."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; expected the official nyu_depth_v2_labeled.mat from "
            "https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html"
        )
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(
            f"{path}: not an HDF5 (MATLAB v7.3) file ({e}); expected the official "
            "nyu_depth_v2_labeled.mat from https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html"
        ) from None
    with f:
        if "sceneTypes" not in f:
            raise ValueError(
                f"{path}: no 'sceneTypes' field (found {sorted(f)}); expected the official nyu_depth_v2_labeled.mat"
            )
        refs = np.asarray(f["sceneTypes"]).ravel()
        return ["".join(map(chr, np.asarray(f[r]).ravel())) for r in refs]


def read_official_split(path) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) 0-based frame numbers from the official splits.mat (trainNdxs, testNdxs, 1-based)."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected the official NYUv2 splits.mat (trainNdxs, testNdxs)")
    m = loadmat(path)
    missing = [k for k in ("trainNdxs", "testNdxs") if k not in m]
    if missing:
        raise ValueError(f"{path}: no {' or '.join(missing)}; expected the official NYUv2 splits.mat")
    return (np.asarray(m["trainNdxs"]).ravel().astype(int) - 1, np.asarray(m["testNdxs"]).ravel().astype(int) - 1)


def manifest_rows(scene_types, train, test) -> list[tuple[str, int, str]]:
    """(split, index, scene type): MTAN's train/{i} = frame train[i], val/{i} = frame test[i] (0-based frames)."""
    n = len(scene_types)
    for name, idx in (("train", train), ("test", test)):
        bad = [int(i) + 1 for i in idx if not 0 <= i < n]
        if bad:
            raise ValueError(
                f"the {name} split names frames {bad[:5]} (1-based) outside 1..{n}: the split and the "
                f"labelled file do not belong together"
            )
    return [("train", i, scene_types[f]) for i, f in enumerate(train)] + [
        ("val", i, scene_types[f]) for i, f in enumerate(test)
    ]


def write_manifest_from_official(labeled, splits, root) -> Path:
    """Write ROOT/scene_types.csv; when ROOT/{train,val}/image exist, their file counts must match the split."""
    rows = manifest_rows(read_scene_types(labeled), *read_official_split(splits))
    root = Path(root)
    for split in mtan.MTAN_SPLITS:
        folder = root / split / "image"
        if folder.is_dir():
            have, want = len(mtan.npy_indices(folder)), sum(r[0] == split for r in rows)
            if have != want:
                raise ValueError(
                    f"{folder} holds {have} images but the split gives {split} {want} frames; "
                    "is ROOT the MTAN NYUv2 copy and splits.mat the official one?"
                )
    root.mkdir(parents=True, exist_ok=True)
    out = root / "scene_types.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "index", "scene_type"])
        w.writerows(rows)
    return out


def write_official_fixture(dir, scene_types, train, test) -> tuple[Path, Path]:
    """Tiny stand-ins of the two official files (same fields and storage) for tests: frames 0-based here."""
    import h5py
    from scipy.io import savemat

    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    labeled, splits = d / "nyu_depth_v2_labeled.mat", d / "splits.mat"
    with h5py.File(labeled, "w") as f:  # MATLAB v7.3 stores a cell of strings as references to uint16
        refs = f.create_group("#refs#")
        targets = [
            refs.create_dataset(f"s{i}", data=np.array([[ord(c)] for c in s], dtype=np.uint16))
            for i, s in enumerate(scene_types)
        ]
        cell = f.create_dataset("sceneTypes", (1, len(targets)), dtype=h5py.ref_dtype)
        for i, t in enumerate(targets):
            cell[0, i] = t.ref
    savemat(
        splits,
        {
            "trainNdxs": np.asarray(train, dtype=float)[:, None] + 1,
            "testNdxs": np.asarray(test, dtype=float)[:, None] + 1,
        },
    )
    return labeled, splits
