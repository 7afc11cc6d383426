#!/usr/bin/env bash
# Check the import-linter contracts in pyproject.toml ([tool.importlinter]).
# Why a staging tree: system/, simulator/, chaos/, analysis/ and bench/ are mapped into the
# `flashlab` package by setuptools' package-dir, but grimp (import-linter's graph builder) walks
# the `flashlab/` folder on disk. So we stage the package as installed - flashlab/ plus each
# mapped folder under it (symlinked files) - and point import-linter at that.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
.venv/bin/python - "$stage" <<'PY'
import os, sys, tomllib
from pathlib import Path

stage = Path(sys.argv[1])
mapping = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
for package, folder in sorted(mapping.items()):
    dest = stage.joinpath(*package.split("."))
    for src in Path(folder).rglob("*.py"):
        rel = src.relative_to(folder)
        if rel.parts[0] in {p.split(".")[-1] for p in mapping if p != package and p.startswith(package + ".")}:
            continue  # a nested mapped package is staged from its own folder
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src.resolve(), dest / rel)
PY
cd "$stage" && PYTHONPATH="$stage" "$OLDPWD/.venv/bin/lint-imports" "$OLDPWD/pyproject.toml" --no-cache
