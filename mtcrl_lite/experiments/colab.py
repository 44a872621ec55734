"""Every notebook opens in Colab once the repository is published: a badge cell and one bootstrap cell, written here
for all notebooks.

    python -m mtcrl_lite.experiments.colab            # (re)write the badge and the bootstrap cell of every notebook
    python -m mtcrl_lite.experiments.colab --check    # exit 1 if a notebook's cells differ from what this module writes
    python -m mtcrl_lite.experiments.colab --release URL TAG   # `make release`: record the public address and the
                                                               # tag (URL must answer), then rewrite the notebooks

The repository's public address and release tag are recorded once, in pyproject.toml ([tool.mtcrl-lite]
repository, release). While they are empty (not published yet) the badge cell says so, with no link, and on Colab
the bootstrap cell uses a copy of the repository put in /content/mtcrl-lite by hand or stops with what to do.
Published, the badge opens the notebook at that tag in Colab and the bootstrap cell clones the repository at that
tag. Either way it then runs `make colab` in the clone (the pinned packages Colab lacks, requirements-colab.txt;
Colab's torch and numpy stay; the package; the data the notebook reads). Anywhere else the cell does nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib

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
# Colab only: get mtcrl-lite at this notebook's release and run `make colab` there (installs what Colab lacks at
# the repository's pins, fetches the data this notebook reads). Anywhere else this cell does nothing (`make venv data`).
import os
import subprocess
import sys

REPO, REV, DATA, CLONE = {repo!r}, {rev!r}, {data!r}, {clone!r}
if "google.colab" in sys.modules:
    if not os.path.isdir(CLONE):
        if not REPO:
            raise RuntimeError(f"mtcrl-lite has no public address yet: put a copy of the repository in {{CLONE}} "
                               "(upload or clone it), then run this cell again")
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", REV, REPO, CLONE], check=True)
    subprocess.run(["make", "-C", CLONE, "colab", f"PYTHON={{sys.executable}}", f"DATA={{' '.join(DATA)}}"], check=True)
    sys.path.insert(0, CLONE)
    os.chdir(os.path.join(CLONE, "notebooks"))"""
UNPUBLISHED = (
    '*Colab: not published yet.* This repository has no public address yet, so there is no "Open in Colab" link; '
    'run the notebook locally (`make lab`). Maintainers: docs/USAGE.md, "Colab".'
)
GITHUB = re.compile(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
PYPROJECT_KEYS = re.compile(r'^(repository|release) = "[^"]*"$', re.M)


def published(root=None) -> tuple[str, str]:
    """(public address, release tag) from pyproject.toml [tool.mtcrl-lite]; ("", "") while not published."""
    path = (root or REPO_ROOT) / "pyproject.toml"
    meta = tomllib.loads(path.read_text()).get("tool", {}).get("mtcrl-lite", {})
    if "repository" not in meta or "release" not in meta:
        raise ValueError(
            f'{path} has no [tool.mtcrl-lite] repository and release; add them (repository = "", release = "" '
            f"until published, then `make release URL=https://github.com/OWNER/NAME TAG=vX.Y.Z`)"
        )
    repo, tag = meta["repository"].rstrip("/"), meta["release"]
    if bool(repo) != bool(tag) or (repo and not GITHUB.fullmatch(repo)):
        raise ValueError(
            f"{path}: [tool.mtcrl-lite] repository = {repo!r}, release = {tag!r}: both empty (not published) or "
            f"both set, the address as https://github.com/OWNER/NAME (Colab opens notebooks from GitHub); "
            f"set them with `make release URL=... TAG=...`"
        )
    return repo, tag


def badge(name: str) -> str:
    repo, tag = published()
    if not repo:
        return UNPUBLISHED
    url = f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/{tag}/notebooks/{name}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def bootstrap(name: str) -> str:
    if name not in DATA:
        raise KeyError(
            f"notebooks/{name}.ipynb is not in mtcrl_lite.experiments.colab.DATA; add the datasets it fetches there"
        )
    repo, tag = published()
    return BOOTSTRAP.format(repo=repo, rev=tag, data=DATA[name], clone=CLONE)


def remote_exists(url: str) -> bool:
    """Whether a git repository answers at `url` (`git ls-remote`; False if it cannot be reached)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # a missing GitHub repository asks for credentials otherwise
    done = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True, timeout=120, env=env)
    return done.returncode == 0


def release(url: str, tag: str, root=None) -> None:
    """Record `url` and `tag` in pyproject.toml [tool.mtcrl-lite], after checking that `url` is a GitHub repository
    that answers (the tag is made and pushed with the commit that carries the new badges: docs/USAGE.md, "Colab").
    Raises ValueError naming what is wrong and the fix, and changes nothing then."""
    url = url.rstrip("/").removesuffix(".git")
    if not GITHUB.fullmatch(url):
        raise ValueError(f"URL={url!r}: give the repository's GitHub address, https://github.com/OWNER/NAME")
    if not re.fullmatch(r"v\d+\.\d+\.\d+\S*", tag):
        raise ValueError(f"TAG={tag!r}: give a release tag such as v0.1.0")
    if not remote_exists(url):
        raise ValueError(
            f"no repository answers at {url} (git ls-remote): create it and push this branch there first, so that "
            f"the badges never point at an address that does not exist"
        )
    path = (root or REPO_ROOT) / "pyproject.toml"
    published(root)  # the section exists and is valid before we edit it
    path.write_text(PYPROJECT_KEYS.sub(lambda m: f'{m.group(1)} = "{url if m.group(1) == "repository" else tag}"',
                                       path.read_text()))  # fmt: skip
    published(root)


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
    p.add_argument("--release", nargs=2, metavar=("URL", "TAG"), help="record the public address and tag first")
    args = p.parse_args(argv)
    if args.release:
        try:
            release(*args.release)
        except ValueError as e:
            print(f"release: {e}", file=sys.stderr)
            return 1
        repo, tag = published()
        print(f"recorded {repo} at {tag} in pyproject.toml; next: git commit -am 'Release {tag}: Colab badges' && "
              f"git tag {tag} && git push {repo} HEAD {tag}")  # fmt: skip
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
    repo, tag = published()
    print(f"notebooks: Colab badges and bootstrap cells for {repo} at {tag}" if repo else
          "notebooks: not published (no Colab link); `make release URL=... TAG=...` publishes")  # fmt: skip
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
