"""Packaging: one version, shown the same everywhere; the license and the changelog keep up with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import initlab

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; these checks need no second run on 3.10

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_is_written_once_and_read_by_the_build() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "initlab.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*", initlab.__version__), initlab.__version__


def test_the_command_line_prints_the_library_version() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "initlab", "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == initlab.__version__


def test_the_changelog_has_a_section_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## (\d+\.\d+\.\d+\S*)", changelog, flags=re.MULTILINE)
    assert versions and versions[0] == initlab.__version__, versions


def test_the_license_file_is_the_declared_one() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert (ROOT / "src" / "initlab" / "py.typed").is_file()
