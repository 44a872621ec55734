"""What the make targets run (`make -n -B`: printed, not run): the interpreter they use (.venv, an active conda
environment, PYTHON_ENV) and the reproduce tiers (mtcrl_lite/experiments/reproduce.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from mtcrl_lite.experiments import ablations, reproduce
from mtcrl_lite.paths import REPO_ROOT

CONDA = "/opt/conda/envs/mtcrl-lite"


def make_n(*targets: str, **env: str) -> list[str]:
    """The commands `make` would run for `targets` (all of them: -B), blanks squeezed, with `env` as the only conda
    variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA_", "PYTHON_ENV"))}
    done = subprocess.run(["make", "-n", "-B", "-s", "-C", str(REPO_ROOT), *targets], env={**base, **env},
                          capture_output=True, text=True, check=True)  # fmt: skip
    return [re.sub(r"\s+", " ", line).strip() for line in done.stdout.replace("\\\n", " ").splitlines()]


def pythons(lines: list[str]) -> set[str]:
    """The interpreters the commands start (the first word of each line that runs a python)."""
    return {line.split()[0] for line in lines if re.match(r"\S*python3?\s", line)}


def test_without_conda_the_targets_build_and_use_dot_venv():
    lines = make_n("data", "reproduce")
    assert "test -x .venv/bin/python || python3 -m venv .venv" in lines
    assert ".venv/bin/python -m pip install -q -r requirements.txt" in lines
    assert pythons(lines) == {".venv/bin/python"}
    assert ".venv/bin/python -m mtcrl_lite.data fetch mnist movielens fashion" in lines


@pytest.mark.parametrize("env", [{"CONDA_PREFIX": CONDA, "CONDA_DEFAULT_ENV": "mtcrl-lite"},
                                 {"PYTHON_ENV": f"{CONDA}/bin/python"}])  # fmt: skip
def test_an_active_conda_environment_is_used_instead_of_building_dot_venv(env):
    lines = make_n("data", "test", "reproduce", "reproduce-quick", "lab", **env)
    assert not [line for line in lines if re.search(r"\.venv(/| |$)", line)]  # no .venv made, none used
    # besides the conda env, only the two tool environments kept apart by design (cffconvert, Jupyter Book)
    assert pythons(lines) == {f"{CONDA}/bin/python", ".venv-cff/bin/python", ".venv-book/bin/python"}
    py = f"{CONDA}/bin/python"
    assert f'{py} -I -c "import mtcrl_lite, cityscapesscripts.helpers.labels" 2>/dev/null || ' \
        f"{{ {py} -m pip install -q --no-deps -r requirements-nodeps.txt && {py} -m pip install -q --no-deps -e .; }}" \
        in lines  # fmt: skip
    assert f"{py} -m mtcrl_lite.data fetch mnist movielens fashion" in lines
    assert f"{py} -m ruff check . && {py} -m ruff format --check ." in lines
    assert f"{py} -m mtcrl_lite.experiments.reproduce paper --" in lines


def test_conda_base_is_not_taken_for_the_projects_environment():
    lines = make_n("data", CONDA_PREFIX="/opt/conda", CONDA_DEFAULT_ENV="base")
    assert pythons(lines) == {".venv/bin/python"}


def test_one_make_target_per_notebook_and_per_tier():
    assert make_n("results/06_multimnist.ipynb")[-1] == ".venv/bin/python -m mtcrl_lite.experiments.reproduce paper " \
        "--only 06_multimnist --"  # fmt: skip
    assert make_n("results/quick/10_beyond_the_paper.ipynb")[-1].endswith(
        "reproduce quick --only 10_beyond_the_paper --"
    )
    assert make_n("reproduce-all", "PAPERMILL_ARGS=-p DEVICE cuda")[-1].endswith("reproduce all -- -p DEVICE cuda")
    assert make_n("reproduce-quick")[-1].endswith("reproduce quick --")


def test_tiers_cover_the_notebooks():
    notebooks = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    names = {tier: [s.notebook for s in steps] for tier, steps in reproduce.TIERS.items()}
    assert names["quick"] == names["all"] == notebooks
    assert names["paper"] == notebooks[:-1] and notebooks[-1] == "10_beyond_the_paper"
    assert all(s.env == {"MTCRL_SMOKE": "1"} for s in reproduce.TIERS["quick"])
    assert all(reproduce.output("quick", s).startswith("results/quick/") for s in reproduce.TIERS["quick"])
    (design,) = [s for s in reproduce.TIERS["all"] if s.notebook == "08_ablations"]
    assert json.loads(design.args[1]) == {"CONDITIONS": list(ablations.DESIGN)} and design.args[0] == "-y"
    assert [s for s in reproduce.TIERS["paper"] if s.notebook == "08_ablations"][0].args == ()
    paper = {s.notebook: s.minutes for s in reproduce.TIERS["all"]}
    assert all(s.minutes < paper[s.notebook] for s in reproduce.TIERS["quick"])  # quick is quicker, everywhere


def test_the_plan_comes_first_with_the_expected_time(capsys):
    assert (
        reproduce.main(["paper", "--only", "06_multimnist", "10_beyond_the_paper", "--dry-run", "--", "-p", "X", "1"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("reproduce paper: notebooks 01-09 at their CPU default, into results/; 2 notebook(s), "
                             "expected ≈ 5 h 50 min on 2 CPU cores")  # fmt: skip
    assert re.match(r"  \[1/2\] 06_multimnist +≈ +50 min 00 s  -> results/06_multimnist.ipynb \(-p X 1\)", out[1])
    assert out[3].endswith("-m papermill --cwd notebooks notebooks/06_multimnist.ipynb results/06_multimnist.ipynb "
                           "-p X 1")  # fmt: skip
    with pytest.raises(SystemExit, match="unknown notebook"):
        reproduce.main(["paper", "--only", "11_new"])


def test_quick_outputs_are_labelled_not_the_papers_numbers(tmp_path):
    nb = {"cells": [{"cell_type": "code", "id": "a", "metadata": {}, "source": ["1"]}], "metadata": {}}
    path = tmp_path / "06_multimnist.ipynb"
    path.write_text(json.dumps(nb))
    reproduce.label_quick(path)
    reproduce.label_quick(path)
    cells = json.loads(path.read_text())["cells"]
    assert [c["id"] for c in cells] == ["quick-tier", "a"] and "not the paper's numbers" in cells[0]["source"][0]
    assert reproduce.environment("quick", reproduce.TIERS["quick"][0])["MTCRL_RESULTS"] == str(
        REPO_ROOT / "results" / "quick"
    )
    assert reproduce.duration(3 * 3600 + 5 * 60) == "3 h 05 min" and reproduce.duration(42) == "42 s"
