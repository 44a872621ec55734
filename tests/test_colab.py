"""Every notebook's Colab badge and bootstrap cell (mtcrl_lite/experiments/colab.py): not published, no link and a
clear stop on Colab; published (`make release`), on Colab the cell runs exactly the clone, install and fetch commands
below; anywhere else it runs nothing. Checked without a network by recording the commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from mtcrl_lite.data.sources import FETCHERS
from mtcrl_lite.experiments import colab

NAMES = sorted(p.stem for p in colab.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


URL, TAG = "https://github.com/someone/mtcrl-lite", "v0.1.0"


def first_cells(name: str) -> list[dict]:
    return json.loads((colab.NOTEBOOKS / f"{name}.ipynb").read_text())["cells"][:2]


def run_cell(source: str, monkeypatch, on_colab: bool, cloned: bool = False) -> list:
    """Execute a bootstrap cell, recording what it would run instead of running it."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(("run", cmd, kw)))
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(("chdir", path)))
    monkeypatch.setattr(os.path, "isdir", lambda path: cloned)
    monkeypatch.setattr(sys, "path", list(sys.path))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(source, {})
    if on_colab:
        assert sys.path[0] == colab.CLONE
    return calls


def make_colab(name: str) -> tuple:
    cmd = ["make", "-C", colab.CLONE, "colab", f"PYTHON={sys.executable}", "DATA=" + " ".join(colab.DATA[name])]
    return ("run", cmd, {"check": True})


@pytest.fixture
def published(monkeypatch):
    monkeypatch.setattr(colab, "published", lambda root=None: (URL, TAG))


def test_every_notebook_has_the_current_cells_and_no_link_while_unpublished():
    assert NAMES and set(NAMES) == set(colab.DATA)
    assert colab.main(["--check"]) == 0, "run python -m mtcrl_lite.experiments.colab"
    assert colab.published() == ("", ""), "published: the badges must link to the address and tag (make release)"
    for name in NAMES:
        badge, boot = first_cells(name)
        assert badge["cell_type"] == "markdown" and boot["cell_type"] == "code" and boot["outputs"] == []
        assert "".join(badge["source"]) == colab.UNPUBLISHED and "http" not in colab.UNPUBLISHED
        assert "google.colab" in "".join(boot["source"])
    assert not any("github.com" in p.read_text() for p in colab.NOTEBOOKS.glob("*.ipynb"))


def test_published_badges_open_the_tag_on_colab(published):
    assert colab.badge("06_multimnist") == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com"
        "/github/someone/mtcrl-lite/blob/v0.1.0/notebooks/06_multimnist.ipynb)"
    )


@pytest.mark.parametrize("name", ["10_beyond_the_paper", "01_theory_proposition1"])
def test_on_colab_it_clones_at_the_release_and_runs_make_colab(name, published, monkeypatch):
    calls = run_cell(colab.bootstrap(name), monkeypatch, on_colab=True)
    clone = colab.CLONE
    assert calls == [
        ("run", ["git", "clone", "--quiet", "--depth", "1", "--branch", TAG, URL, clone], {"check": True}),
        make_colab(name),
        ("chdir", f"{clone}/notebooks"),
    ]


def test_unpublished_on_colab_it_uses_a_copy_put_there_or_says_what_to_do(monkeypatch):
    source = "".join(first_cells("06_multimnist")[1]["source"])
    assert run_cell(source, monkeypatch, on_colab=True, cloned=True) == [
        make_colab("06_multimnist"),
        ("chdir", f"{colab.CLONE}/notebooks"),
    ]
    with pytest.raises(RuntimeError, match=r"no public address yet: put a copy of the repository in /content/"):
        run_cell(source, monkeypatch, on_colab=True, cloned=False)


@pytest.mark.parametrize("data", ["mnist fashion movielens", ""])
def test_make_colab_installs_what_colab_lacks_and_fetches(data):
    """What the cell's `make colab` runs (make -n: printed, not run)."""
    out = subprocess.run(
        ["make", "-n", "-s", "-C", str(colab.REPO_ROOT), "colab", "PYTHON=PY", f"DATA={data}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    expected = [
        "PY -m pip install -q -r requirements-colab.txt",
        "PY -m pip install -q --no-deps -r requirements-nodeps.txt",
        "PY -m pip install -q --no-deps -e .",
    ]
    if data:
        expected.append(f"PY -m mtcrl_lite.data fetch {data}")  # canonical hosts: no npm, no apt
    assert out == expected


def test_elsewhere_it_does_nothing(monkeypatch):
    before = list(sys.path)
    for name in NAMES:
        assert run_cell("".join(first_cells(name)[1]["source"]), monkeypatch, on_colab=False) == []
    assert sys.path == before


def test_data_names_are_fetchable_and_the_files_it_installs_exist():
    assert {d for ds in colab.DATA.values() for d in ds} <= set(FETCHERS)
    for f in ("requirements-colab.txt", "requirements-nodeps.txt", "pyproject.toml"):
        assert (colab.REPO_ROOT / f).exists()


def test_writer_replaces_its_cells_and_keeps_the_rest():
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# title"]}], "metadata": {}}
    once = colab.with_colab_cells(nb, "06_multimnist")
    assert colab.with_colab_cells(once, "06_multimnist") == once  # idempotent
    assert [c["cell_type"] for c in once["cells"]] == ["markdown", "code", "markdown"]
    assert once["cells"][2] == nb["cells"][0]
    with pytest.raises(KeyError, match="colab.DATA"):
        colab.bootstrap("11_new")


def pyproject(tmp_path, repository="", release=""):
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.mtcrl-lite]\n# here\nrepository = "{repository}"\nrelease = "{release}"\n'
    )
    return tmp_path


def test_release_records_address_and_tag_once_the_repository_answers(tmp_path, monkeypatch):
    root = pyproject(tmp_path)
    asked = []
    monkeypatch.setattr(colab, "remote_exists", lambda url: asked.append(url) or url == URL)
    colab.release(URL + ".git", TAG, root)
    assert colab.published(root) == (URL, TAG) and asked == [URL]
    assert "# here" in (root / "pyproject.toml").read_text()
    before = (root / "pyproject.toml").read_text()
    with pytest.raises(ValueError, match=r"no repository answers at https://github.com/x/y \(git ls-remote\)"):
        colab.release("https://github.com/x/y", TAG, root)
    with pytest.raises(ValueError, match=r"URL='https://gitlab.com/a/b': give the repository's GitHub address"):
        colab.release("https://gitlab.com/a/b", TAG, root)
    with pytest.raises(ValueError, match=r"TAG='0.1': give a release tag such as v0.1.0"):
        colab.release(URL, "0.1", root)
    assert (root / "pyproject.toml").read_text() == before  # nothing changed by a refused release


def test_remote_exists_asks_git(tmp_path):
    remote = tmp_path / "remote"
    subprocess.run(["git", "init", "-q", str(remote)], check=True)
    assert colab.remote_exists(str(remote)) and not colab.remote_exists(str(tmp_path / "nothing"))


def test_a_half_recorded_or_missing_release_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"both empty \(not published\) or both set"):
        colab.published(pyproject(tmp_path, repository=URL))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"pyproject.toml has no \[tool.mtcrl-lite\] repository and release"):
        colab.published(tmp_path)


def test_make_release_runs_the_release_then_the_check():
    out = subprocess.run(
        ["make", "-n", "-s", "-C", str(colab.REPO_ROOT), "release", f"URL={URL}", f"TAG={TAG}", "PYTHON_ENV=PY"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[-2:] == [
        f'PY -m mtcrl_lite.experiments.colab --release "{URL}" "{TAG}"',
        "PY -m mtcrl_lite.experiments.colab --check",
    ]
