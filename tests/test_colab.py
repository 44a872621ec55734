"""Every notebook's Colab badge and bootstrap cell (mtcrl_lite/colab.py): on Colab the cell runs exactly the clone,
install and fetch commands below; anywhere else it runs nothing. Checked without a network by recording the commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from mtcrl_lite import __version__, colab
from mtcrl_lite.data.sources import FETCHERS

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
    assert colab.main(["--check"]) == 0, "run python -m mtcrl_lite.colab"
    for name in NAMES:
        badge, boot = first_cells(name)
        assert badge["cell_type"] == "markdown" and boot["cell_type"] == "code" and boot["outputs"] == []
        assert f"/blob/v{__version__}/notebooks/{name}.ipynb" in "".join(badge["source"])
        assert len(boot["source"]) <= 15 + 4          # a notebook cell: at most ~15 lines of logic


@pytest.mark.parametrize("name", ["10_beyond_the_paper", "01_theory_proposition1"])
def test_on_colab_it_clones_installs_and_fetches(name, monkeypatch):
    calls = run_cell(name, monkeypatch, on_colab=True)
    py, clone = sys.executable, colab.CLONE
    pip = [py, "-m", "pip", "install", "-q"]
    expected = [("run", ["git", "clone", "--quiet", "--depth", "1", "--branch", f"v{__version__}", colab.repository(),
                         clone], {"check": True}),
                ("run", pip + ["-r", "requirements.txt"], {"check": True, "cwd": clone}),
                ("run", pip + ["--no-deps", "-r", "requirements-nodeps.txt"], {"check": True, "cwd": clone}),
                ("run", pip + ["--no-deps", "-e", "."], {"check": True, "cwd": clone})]
    if colab.DATA[name]:
        expected.append(("run", [py, "-m", "mtcrl_lite.data", "fetch", "mnist", "fashion", "movielens"],
                         {"check": True, "cwd": clone}))
    assert calls == expected + [("chdir", f"{clone}/notebooks")]


def test_elsewhere_it_does_nothing(monkeypatch):
    before = list(sys.path)
    for name in NAMES:
        assert run_cell(name, monkeypatch, on_colab=False) == []
    assert sys.path == before


def test_data_names_are_fetchable_and_the_files_it_installs_exist():
    assert {d for ds in colab.DATA.values() for d in ds} <= set(FETCHERS)
    for f in ("requirements.txt", "requirements-nodeps.txt", "pyproject.toml"):
        assert (colab.REPO_ROOT / f).exists()


def test_writer_replaces_its_cells_and_keeps_the_rest():
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# title"]}], "metadata": {}}
    once = colab.with_colab_cells(nb, "06_multimnist")
    assert colab.with_colab_cells(once, "06_multimnist") == once          # idempotent
    assert [c["cell_type"] for c in once["cells"]] == ["markdown", "code", "markdown"]
    assert once["cells"][2] == nb["cells"][0]
    with pytest.raises(KeyError, match="colab.DATA"):
        colab.bootstrap("11_new")


def test_missing_repository_address_is_a_clear_error(monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    monkeypatch.setattr(colab, "REPO_ROOT", tmp_path)
    with pytest.raises(ValueError, match=r"pyproject.toml has no \[project.urls\] Repository"):
        colab.repository()
