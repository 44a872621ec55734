"""Notebook parameters as papermill passes them (`-p` hands lists over as strings), end to end through papermill."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def papermill(tmp_path, notebook, *params):
    out = tmp_path / "out.ipynb"
    env = {**os.environ, "MTCRL_SMOKE": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            "--cwd",
            str(ROOT / "notebooks"),
            str(ROOT / "notebooks" / notebook),
            str(out),
            *params,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return r, out


def first_output(out: Path) -> str:
    """The first text the notebook prints (stdout: a warning on stderr, e.g. tqdm's about ipywidgets, may be
    flushed before or after it)."""
    for cell in json.loads(out.read_text())["cells"]:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                return "".join(o["text"])
    return ""


@pytest.mark.parametrize("notebook", ["03_taskonomy.ipynb", "04_cityscapes.ipynb", "05_nyuv2.ipynb"])
def test_list_and_int_parameters_from_the_command_line(tmp_path, notebook):
    r, out = papermill(
        tmp_path,
        notebook,
        "-p",
        "SEEDS",
        "[0]",
        "-p",
        "METHODS",
        "[mtl]",
        "-p",
        "EPOCHS",
        "1",
        "-p",
        "RESULTS_DIR",
        str(tmp_path / "results"),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    text = first_output(out)
    assert text.startswith("data: SYNTHETIC STAND-IN (scenes) †")
    assert "seeds=[0] methods=['mtl']" in text
    runs = list((tmp_path / "results" / "mtl").glob("seed0-*/config.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["train"]["epochs"] == 1


@pytest.mark.parametrize(
    "params, message",
    [
        (["-p", "METHODS", '["nope"]'], r"notebook parameter METHODS = .*\['nope'\] not among the valid values"),
        (["-p", "EPOCHS", "0"], r"notebook parameter EPOCHS = 0: \[0\] below the smallest valid value 1"),
        (["-p", "SEEDS", "[a]"], r"notebook parameter SEEDS = '\[a\]': item 'a': expected an integer"),
    ],
)
def test_bad_parameters_stop_the_notebook_with_a_clear_error(tmp_path, params, message):
    import re

    r, _ = papermill(tmp_path, "03_taskonomy.ipynb", *params, "-p", "RESULTS_DIR", str(tmp_path / "results"))
    assert r.returncode != 0
    assert re.search(message, r.stderr), r.stderr[-2000:]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("config.json"))
