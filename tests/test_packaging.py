"""Packaging: the wheel's only import name is `flashlab`; every source folder is in its package list."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _declared_packages_on_disk() -> set[str]:
    """Every folder with an __init__.py under a mapped folder, named as the installed package."""
    found: set[str] = set()
    for package, folder in _setuptools()["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([package, *rel.parts]))
    return found


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    listed = set(_setuptools()["packages"])
    missing = _declared_packages_on_disk() - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_every_listed_package_exists_and_all_live_under_flashlab() -> None:
    listed = set(_setuptools()["packages"])
    assert {name.split(".")[0] for name in listed} == {"flashlab"}
    assert listed <= _declared_packages_on_disk()
