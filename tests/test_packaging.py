"""The install files agree with each other, and notebooks are committed without outputs."""

import fnmatch
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", re.M)


def pins(text):
    return {name.lower(): version for name, version in PIN.findall(text)}


def test_environment_yml_names_the_same_pins_as_requirements():
    req = pins((ROOT / "requirements.txt").read_text())
    assert req["torch"] == "2.13.0"
    assert {"jupyterlab", "seaborn"} <= set(req)  # the design card's notebook stack
    assert pins((ROOT / "environment.yml").read_text()) == req


def test_dockerfile_installs_requirements_and_the_same_python():
    docker = (ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in docker and "make venv" in docker and "COPY Makefile" in docker
    assert not set(pins(docker)) - set(pins((ROOT / "requirements.txt").read_text()))
    assert "python:3.11" in docker and "python=3.11" in (ROOT / "environment.yml").read_text()


def test_colab_installs_a_subset_of_the_pins():
    colab = pins((ROOT / "requirements-colab.txt").read_text())
    req = pins((ROOT / "requirements.txt").read_text())
    assert colab and all(req.get(name) == version for name, version in colab.items())
    assert "torch" not in colab and "numpy" not in colab  # Colab keeps its own (already imported)


def test_no_deps_pins_are_installed_without_their_dependencies():
    nodeps = pins((ROOT / "requirements-nodeps.txt").read_text())
    assert nodeps == {"cityscapesscripts": "2.3.0", "rliable": "1.2.0"}
    assert not set(nodeps) & set(pins((ROOT / "requirements.txt").read_text()))
    assert "--no-deps -r requirements-nodeps.txt" in (ROOT / "Makefile").read_text()
    assert "requirements-nodeps.txt" in (ROOT / "environment.yml").read_text()
    assert "requirements-nodeps.txt" in (ROOT / "Dockerfile").read_text()


def test_the_citation_validator_has_its_own_fully_pinned_environment():
    cff = (ROOT / "requirements-cff.txt").read_text()
    lines = [line for line in cff.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == len(pins(cff)) and pins(cff)["cffconvert"] == "2.0.0"  # every line an exact pin
    assert not set(pins(cff)) & {"torch", "jupyterlab"}
    make = (ROOT / "Makefile").read_text()
    assert "--no-deps -r requirements-cff.txt" in make and "test: data .venv-cff/.installed" in make


def test_no_torchvision_anywhere():
    for f in ("requirements.txt", "requirements-nodeps.txt", "environment.yml", "Dockerfile", "pyproject.toml"):
        code = [line for line in (ROOT / f).read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not any("torchvision" in line for line in code), f"{f} names torchvision"


@pytest.mark.parametrize("nb", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_stripped_and_parametrized(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{nb.name}: strip outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "SMOKE" in "".join(tagged[0]["source"])
    assert nb.name in (ROOT / "Makefile").read_text()


def docker_ignored(path: str, patterns: list[str]) -> bool:
    """Whether `docker build` leaves `path` out of its context: the last pattern matching the path or one of its
    parent folders decides; `!` re-includes (`**/` also matches at the top)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        glob = pattern.lstrip("!")
        globs = [glob, glob.removeprefix("**/")] if glob.startswith("**/") else [glob]
        if any(fnmatch.fnmatchcase(p, g) for p in prefixes for g in globs):
            ignored = not keep
    return ignored


def test_dockerignore_keeps_local_environments_data_and_results_out_of_the_image():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    out = """.venv/bin/python .venv-cff/bin/cffconvert data/cache/mnist/train-images-idx3-ubyte .git/HEAD
    results/06_multimnist/mtl/seed0/results.jsonl results/smoke/x.ipynb results/quick/06_multimnist.ipynb
    mtcrl_lite/__pycache__/paths.cpython-311.pyc mtcrl_lite.egg-info/PKG-INFO""".split()
    kept = """Makefile mtcrl_lite/paths.py tests/test_fetch.py notebooks/06_multimnist.ipynb results/record/runs.csv
    results/notebooks/09_main_results.ipynb data/README.md tuning/tuned.json""".split()
    assert [p for p in out if not docker_ignored(p, patterns)] == []
    assert [p for p in kept if docker_ignored(p, patterns)] == []
    docker = (ROOT / "Dockerfile").read_text()
    copied = [f for line in docker.splitlines() if line.startswith("COPY ") for f in line.split()[1:-1]]
    assert "requirements-cff.txt" in copied and [f for f in copied if docker_ignored(f, patterns)] == []
    assert "ARG BASE=python:3.11-slim" in docker and "FROM ${BASE}" in docker
