#!/usr/bin/env bash
# Run the test suite; pytest's "no tests collected" (exit 5) is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
.venv/bin/python -m pytest -p no:cacheprovider -ra --durations=15 "$@"
rc=$?
echo "[run-tests] pytest exit $rc after $(( $(date +%s) - start ))s"
if [[ $rc -eq 5 ]]; then echo "[run-tests] error: no tests were collected" >&2; exit 1; fi
exit $rc
