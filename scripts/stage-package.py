"""Stage the `flashlab` package as installed, for tools that walk the package folder on disk.

system/, simulator/, chaos/, analysis/ and bench/ are mapped into `flashlab` by setuptools'
package-dir, but grimp (import-linter's graph builder) walks the `flashlab/` folder on disk. So
this links flashlab/ plus each mapped folder under it (file by file) into STAGE_DIR, which
scripts/lint-imports.sh and tests/test_import_cycles.py put first on PYTHONPATH.

Usage: python scripts/stage-package.py STAGE_DIR   (run from the repository root)
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path


def stage(dest_root: Path, repo: Path) -> None:
    """Symlink every .py file of every mapped package under dest_root, as the wheel lays it out."""
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):
        dest = dest_root.joinpath(*package.split("."))
        nested = {p.split(".")[-1] for p in mapping if p != package and p.startswith(package + ".")}
        for src in (repo / folder).rglob("*.py"):
            rel = src.relative_to(repo / folder)
            if rel.parts[0] in nested:
                continue  # a nested mapped package is staged from its own folder
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src.resolve(), dest / rel)


if __name__ == "__main__":
    stage(Path(sys.argv[1]), Path.cwd())
