"""Packaging: the wheel's only import name is `flashlab`, and folder path = import path.

The folders at the top of the repository (system/, simulator/, chaos/, analysis/, bench/,
experiments/) are linked under flashlab/ (flashlab/system -> ../system), so Python, setuptools,
grimp and mypy all find `flashlab.system` at flashlab/system with no mapping to keep in step.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINKED = ("system", "simulator", "chaos", "analysis", "bench", "experiments")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_each_top_level_folder_is_linked_under_flashlab() -> None:
    for name in LINKED:
        link = ROOT / "flashlab" / name
        assert link.is_symlink(), f"flashlab/{name} should be a symlink to ../{name}"
        assert link.resolve() == (ROOT / name).resolve()


def test_packages_are_found_not_mapped_and_all_live_under_flashlab() -> None:
    tool = _setuptools()
    assert "package-dir" not in tool, "a package-dir mapping makes the folder path differ again"
    assert tool["packages"]["find"]["include"] == ["flashlab", "flashlab.*"]


def test_every_package_folder_is_found_through_the_links() -> None:
    # setuptools' finder walks with followlinks=True; this is what it sees.
    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=["flashlab", "flashlab.*"]))
    expected = {"flashlab"} | {
        ".".join(("flashlab", name, *init.parent.relative_to(ROOT / name).parts))
        for name in LINKED
        for init in (ROOT / name).rglob("__init__.py")
    }
    assert expected <= found, sorted(expected - found)
