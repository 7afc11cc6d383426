#!/usr/bin/env bash
# `make lint` (and the first step of `make test`): ruff lint, ruff format check, layer contracts,
# no import cycles, then mypy ([tool.mypy] in pyproject.toml; incremental, its cache in .mypy_cache/).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
out=$(scripts/lint-imports.sh 2>&1); rc=$?
if (( rc )); then sed -n '/^Contracts:/,$p' <<<"$out" >&2; echo "[lint] import-linter: contracts broken" >&2; exit 1; fi
grep -E "^Contracts:" <<<"$out"
# No import cycles, not even in function bodies or under TYPE_CHECKING (grimp's graph, Tarjan).
out=$(.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_import_cycles.py 2>&1); rc=$?
if (( rc )); then echo "$out" >&2; echo "[lint] import cycles found (see above)" >&2; exit 1; fi
echo "[lint] import cycles: none"
out=$(.venv/bin/python -m mypy 2>&1); rc=$?
if (( rc )); then
  echo "$out" >&2
  errors=$(grep -oE "^Found [0-9]+ errors?" <<<"$out" | grep -oE "[0-9]+")
  echo "[lint] mypy: ${errors:-?} errors (see above)" >&2
  exit 1
fi
# Each ignore names its code (mypy enforces it: ignore-without-code, warn_unused_ignores).
ignores=$(grep -rhoE --include='*.py' "# type: ?ignore" -R flashlab | wc -l)
echo "[lint] mypy: 0 errors; $ignores type: ignore comments, each naming its code"
