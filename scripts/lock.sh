#!/usr/bin/env bash
# `make lock`: refresh constraints.txt, the exact versions `make demo` / `make test` install.
# Resolves pyproject.toml's ranges (every extra) afresh in a throwaway venv and freezes the result,
# so an install today and one next month get the same packages until someone runs this again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q -c scripts/lock-caps.txt ".[all]"
# Every pin must install on the oldest Python pyproject.toml admits, not only on this one: a
# package whose Requires-Python excludes it gets a cap in scripts/lock-caps.txt.
"$tmp/venv/bin/python" - <<'PY'
import sys, tomllib
from importlib import metadata
from packaging.specifiers import SpecifierSet
spec = SpecifierSet(tomllib.load(open("pyproject.toml", "rb"))["project"]["requires-python"])
floor = min(s.version for s in spec if s.operator == ">=")
floor = floor + ".0" * (2 - floor.count("."))
bad = [f"{d.metadata['Name']}=={d.version} (Requires-Python {d.metadata['Requires-Python']})"
       for d in metadata.distributions()
       if d.metadata.get("Requires-Python")
       and floor not in SpecifierSet(d.metadata["Requires-Python"])]
if bad:
    sys.exit(f"lock: these need a newer Python than {floor}; cap them in scripts/lock-caps.txt: "
             + ", ".join(sorted(bad)))
PY
{
  echo "# Exact versions for a reproducible install: scripts/bootstrap.sh installs with -c this file."
  echo "# Refresh with \`make lock\` (scripts/lock.sh) after changing pyproject.toml's ranges."
  echo "# Resolved $(date -u +%Y-%m-%d) for Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())') on $(uname -m)."
  "$tmp/venv/bin/python" -m pip freeze --all --exclude-editable | grep -viE '^(flashlab|pip)( |=|@)'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
