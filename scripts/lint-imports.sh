#!/usr/bin/env bash
# Check the import-linter contracts in pyproject.toml ([tool.importlinter]). The folders system/,
# simulator/, chaos/, analysis/, bench/ and experiments/ are linked under flashlab/, so grimp
# (import-linter's graph builder) walks the package as it is imported, with no staging step.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH="$PWD" .venv/bin/lint-imports --no-cache
