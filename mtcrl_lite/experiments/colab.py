"""Every notebook opens in Colab: an "Open in Colab" badge and one bootstrap cell, written here for all notebooks.

    python -m mtcrl_lite.experiments.colab            # (re)write the badge and the bootstrap cell of every notebook
    python -m mtcrl_lite.experiments.colab --check    # exit 1 if a notebook's cells differ from what this module writes

The bootstrap cell runs before anything imports mtcrl_lite. On Colab only (`google.colab` imported) it clones the
repository at this release's tag (v + the package version) and runs `make colab` in the clone: the pinned packages
Colab lacks (requirements-colab.txt; Colab's torch and numpy stay), the package, the data the notebook reads.
Anywhere else it does nothing. The repository's public address is recorded
once, in pyproject.toml ([project.urls] Repository); this module copies it into the notebooks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib

from mtcrl_lite import __version__
from mtcrl_lite.paths import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
CLONE = "/content/mtcrl-lite"
# what `python -m mtcrl_lite.data fetch` each notebook needs (03-05 fall back to their stand-in without data)
DATA = {
    "01_theory_proposition1": [],
    "02_synthetic_spurious": ["mnist"],
    "03_taskonomy": [],
    "04_cityscapes": [],
    "05_nyuv2": [],
    "06_multimnist": ["mnist"],
    "07_movielens": ["movielens"],
    "08_ablations": ["mnist", "movielens"],
    "09_main_results": ["mnist", "movielens"],
    "10_beyond_the_paper": ["mnist", "fashion", "movielens"],
}
TAG = "colab"  # cell metadata tag of the two cells this module owns

BOOTSTRAP = """\
# Colab only: clone mtcrl-lite at this notebook's release and run `make colab` there (installs what Colab lacks at
# the repository's pins, fetches the data this notebook reads). Anywhere else this cell does nothing (`make venv data`).
import os
import subprocess
import sys

REPO, REV, DATA, CLONE = {repo!r}, {rev!r}, {data!r}, {clone!r}
if "google.colab" in sys.modules:
    if not os.path.isdir(CLONE):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", REV, REPO, CLONE], check=True)
    subprocess.run(["make", "-C", CLONE, "colab", f"PYTHON={{sys.executable}}", f"DATA={{' '.join(DATA)}}"], check=True)
    sys.path.insert(0, CLONE)
    os.chdir(os.path.join(CLONE, "notebooks"))"""


def repository() -> str:
    """The repository's public address, from pyproject.toml."""
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    try:
        return meta["urls"]["Repository"].rstrip("/")
    except KeyError:
        raise ValueError(
            f"{REPO_ROOT / 'pyproject.toml'} has no [project.urls] Repository; add the repository's "
            f"public address there (https://github.com/OWNER/NAME)"
        ) from None


def release() -> str:
    return f"v{__version__}"


def badge(name: str) -> str:
    path = repository().removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{path}/blob/{release()}/notebooks/{name}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def bootstrap(name: str) -> str:
    if name not in DATA:
        raise KeyError(
            f"notebooks/{name}.ipynb is not in mtcrl_lite.experiments.colab.DATA; add the datasets it fetches there"
        )
    return BOOTSTRAP.format(repo=repository(), rev=release(), data=DATA[name], clone=CLONE)


def _cell(kind: str, cell_id: str, source: str) -> dict:
    cell = {"cell_type": kind, "id": cell_id, "metadata": {"tags": [TAG]}, "source": source.splitlines(keepends=True)}
    return {**cell, "execution_count": None, "outputs": []} if kind == "code" else cell


def with_colab_cells(nb: dict, name: str) -> dict:
    """`nb` with the badge and the bootstrap cell first (replacing the ones this module wrote before)."""
    cells = [c for c in nb["cells"] if TAG not in c.get("metadata", {}).get("tags", [])]
    return {
        **nb,
        "cells": [_cell("markdown", "colab-badge", badge(name)), _cell("code", "colab-bootstrap", bootstrap(name))]
        + cells,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.experiments.colab", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check; exit 1 if a notebook would change")
    args = p.parse_args(argv)
    stale = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        new = with_colab_cells(nb, path.stem)
        if new != nb:
            stale.append(path)
            if not args.check:
                path.write_text(json.dumps(new, indent=1, ensure_ascii=False) + "\n")
    for path in stale:
        print(
            f"{'stale' if args.check else 'wrote'}: {path}"
            + (" (run python -m mtcrl_lite.experiments.colab)" if args.check else "")
        )
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
