#!/usr/bin/env bash
# Bootstrap a fresh machine for flashlab: system packages (apt, when root), .venv, the project.
# Idempotent and quiet when everything is already there.
#   scripts/bootstrap.sh [--test]          --test also installs what the suite needs (chromium)
#   scripts/bootstrap.sh --plan [--test]   print the Debian packages it would install, change nothing
# What counts as installed is the binary that is executed (/usr/sbin/nginx, redis-server - not
# redis-cli); see scripts/lib/need.sh (FLASHLAB_BIN_DIRS overrides the search dirs, for tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/need.sh
source scripts/lib/need.sh

PY=${PYTHON:-python3}
VENV=.venv
# Every extra: the lab's own checkout runs everything (ray engine, Compose, notebooks, the suite).
EXTRAS=dev,ray,compose,notebooks,sql
want_test=0
want_plan=0
for arg in "$@"; do
  case $arg in
    --test) want_test=1 ;;
    --plan) want_plan=1 ;;
    *) printf 'bootstrap: unknown option %s (allowed: --test, --plan)\n' "$arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[bootstrap] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- the install decision ----------------------------------------------------------------
# binary executed -> Debian package. Required: the stack's parts and a Python that can make a venv.
REQUIRED=(redis-server=redis-server nginx=nginx-light)
# Optional extras: Prometheus scraping, the wrk reference benchmark, report screenshots (tests).
OPTIONAL=(prometheus=prometheus wrk=wrk)
# ip (iproute2): the ray_cluster tests put each Ray node in a network namespace of their own.
# node/npm and PostgreSQL: the two backends the lab did not build (tests/targets/), judged by the
# suite through target files (need.sh finds Debian's postgres off the PATH).
(( want_test )) && OPTIONAL+=(chromium=chromium ip=iproute2 node=nodejs npm=npm postgres=postgresql)

# Python: the interpreter itself, then its venv/ensurepip module (Debian splits it off into
# python3-venv; a minimal Debian has neither).
python_packages() {
  local py
  if [[ $PY == python3 ]]; then
    py=$(need_find python3) || { printf '%s\n' python3 python3-venv; return; }
  else
    py=$(command -v "$PY") || return 0  # a user-chosen interpreter: theirs to provide
  fi
  "$py" -c 'import ensurepip, venv' 2>/dev/null || printf '%s\n' python3-venv
}

plan_required() { python_packages; need_missing_packages "${REQUIRED[@]}"; }
plan_optional() { need_missing_packages "${OPTIONAL[@]}"; }

if (( want_plan )); then plan_required; plan_optional; exit 0; fi

# --- system packages ------------------------------------------------------------------
mapfile -t missing < <(plan_required)
mapfile -t missing_opt < <(plan_optional)
if (( ${#missing[@]} + ${#missing_opt[@]} )); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing system packages: ${missing[*]} ${missing_opt[*]}"
    need_apt_install bootstrap "${missing[@]}" "${missing_opt[@]}"
  elif (( ${#missing[@]} )); then
    fail "missing ${missing[*]}; run as root (apt-get install ${missing[*]}) or install them yourself"
  else
    say "optional packages missing (not root, skipping): ${missing_opt[*]}"
  fi
fi
# Debian's nginx package enables and starts a system nginx on :80 when systemd runs; we never use it.

# --- Python -------------------------------------------------------------------------
command -v "$PY" >/dev/null || fail "python3 not found; install Python >= 3.11"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "Python >= 3.11 required (found $("$PY" --version 2>&1))"

# --- virtualenv + project -------------------------------------------------------------
[[ -x $VENV/bin/python ]] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
stamp=$VENV/.flashlab-installed
# constraints.txt pins every package (`make lock` refreshes it): the same install on every machine.
hash=$(cat pyproject.toml constraints.txt <(echo "$EXTRAS") | sha256sum | cut -c1-16)
if [[ ! -f $stamp || $(cat "$stamp") != "$hash" ]]; then
  say "installing flashlab and its dependencies into $VENV (first time: a few minutes)"
  # pip's and the build backend's chatter goes to a log; on failure its tail says why.
  log=$VENV/pip-install.log
  { "$VENV/bin/python" -m pip install -q --upgrade pip \
      && "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[$EXTRAS]"; } >"$log" 2>&1 \
    || { grep -E '^(ERROR|error)' "$log" | tail -n 5 >&2; fail "pip install failed (log: $log)"; }
  echo "$hash" > "$stamp"
fi
# Jupyter kernel that runs this venv's python, for executing notebooks.
if [[ ! -d $VENV/share/jupyter/kernels/flashlab ]]; then
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name flashlab --display-name "flashlab (.venv)" >/dev/null
fi
say "ready: $("$VENV/bin/flashlab" --version 2>/dev/null || echo flashlab)"
