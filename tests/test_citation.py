"""CITATION.cff is valid CFF 1.2.0 (checked by cffconvert, which `make test` installs in .venv-cff) and says what
the README's "How to cite" says."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cffconvert() -> str:
    exe = os.environ.get("MTCRL_CFFCONVERT") or shutil.which("cffconvert")
    if not exe:
        pytest.skip("cffconvert is not installed; `make test` installs it in .venv-cff (requirements-cff.txt)")
    return str(ROOT / exe) if not os.path.isabs(exe) and (ROOT / exe).exists() else exe


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([cffconvert(), "--validate", "-i", str(path)], capture_output=True, text=True)


def test_citation_cff_is_valid():
    run = validate(ROOT / "CITATION.cff")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_validator_rejects_a_broken_copy(tmp_path):
    """The check above can fail: the same file with a reference type CFF does not know is invalid."""
    broken = tmp_path / "CITATION.cff"
    broken.write_text((ROOT / "CITATION.cff").read_text().replace("type: conference-paper", "type: talk-show"))
    assert validate(broken).returncode != 0


def test_citation_names_the_paper_and_the_license():
    cff = (ROOT / "CITATION.cff").read_text()
    assert "Improving Multi-Task Generalization via Regularizing Spurious Correlation" in cff
    assert "license: MIT" in cff and (ROOT / "LICENSE").read_text().startswith("MIT License")
    readme = (ROOT / "README.md").read_text()
    assert "## How to cite" in readme and "CITATION.cff" in readme
