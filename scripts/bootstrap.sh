#!/usr/bin/env bash
# Bootstrap a fresh machine for flashlab: system packages (apt, when root), .venv, the project.
# Idempotent and quiet when everything is already there. Usage: scripts/bootstrap.sh [--test]
#   --test  also installs what the test suite needs (chromium for report screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

say() { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[bootstrap] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- Python -------------------------------------------------------------------------
command -v "$PY" >/dev/null || fail "python3 not found; install Python >= 3.11"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "Python >= 3.11 required (found $("$PY" --version 2>&1))"

# --- system packages ------------------------------------------------------------------
# binary -> Debian package. redis-server and nginx are required; the rest are optional extras.
declare -A need=([redis-server]=redis-server [nginx]=nginx-light)
declare -A optional=([prometheus]=prometheus [wrk]=wrk)
# ip (iproute2): the ray_cluster tests put each Ray node in a network namespace of their own.
if (( want_test )); then optional[chromium]=chromium; optional[ip]=iproute2; fi

missing=()
for bin in "${!need[@]}"; do command -v "$bin" >/dev/null || [[ -x /usr/sbin/$bin ]] || missing+=("${need[$bin]}"); done
missing_opt=()
for bin in "${!optional[@]}"; do command -v "$bin" >/dev/null || [[ -x /usr/sbin/$bin ]] || missing_opt+=("${optional[$bin]}"); done

if (( ${#missing[@]} + ${#missing_opt[@]} )); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing system packages: ${missing[*]} ${missing_opt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" "${missing_opt[@]}" >/dev/null
  elif (( ${#missing[@]} )); then
    fail "missing ${missing[*]}; run as root (apt-get install ${missing[*]}) or install them yourself"
  else
    say "optional packages missing (not root, skipping): ${missing_opt[*]}"
  fi
fi
# Debian's nginx package enables and starts a system nginx on :80 when systemd runs; we never use it.

# --- virtualenv + project -------------------------------------------------------------
[[ -x $VENV/bin/python ]] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
stamp=$VENV/.flashlab-installed
hash=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -f $stamp || $(cat "$stamp") != "$hash" ]]; then
  say "installing flashlab and its dependencies into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  echo "$hash" > "$stamp"
fi
# Jupyter kernel that runs this venv's python, for executing notebooks.
if [[ ! -d $VENV/share/jupyter/kernels/flashlab ]]; then
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name flashlab --display-name "flashlab (.venv)" >/dev/null
fi
say "ready: $("$VENV/bin/flashlab" --version 2>/dev/null || echo flashlab)"
