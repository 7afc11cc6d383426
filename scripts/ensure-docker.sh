#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`: install the Debian packages when root and
# missing, start `dockerd` by hand when none runs (no systemd here), wait until it is ready.
# Idempotent. Exits non-zero with one clear line when the engine cannot be made to answer.
#   scripts/ensure-docker.sh          ensure the engine (and Compose: the v2 plugin, else docker-compose v1; debootstrap)
#   scripts/ensure-docker.sh --plan   print the Debian packages it would install (one a line), change nothing
#   scripts/ensure-docker.sh --stop   stop a dockerd that THIS script started (by its PID file)
# What counts as installed is the binary that is executed - the engine `dockerd`, not a `docker`
# client that happens to be on the PATH - see scripts/lib/need.sh (FLASHLAB_BIN_DIRS overrides
# the search directories, for tests).
set -euo pipefail
# shellcheck source=lib/need.sh
source "$(dirname "$0")/lib/need.sh"

# binary executed -> the Debian package that brings it. docker.io ships both dockerd and the client.
REQUIRED=(dockerd=docker.io docker=docker.io docker-compose=docker-compose debootstrap=debootstrap)

STATE_DIR=${FLASHLAB_DOCKER_STATE:-/var/tmp/flashlab-docker}
PID_FILE=$STATE_DIR/dockerd.pid
LOG_FILE=$STATE_DIR/dockerd.log
READY_TIMEOUT_S=${FLASHLAB_DOCKER_TIMEOUT_S:-60}

say() { printf '\033[1;34m[ensure-docker]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[ensure-docker] error:\033[0m %s\n' "$*" >&2; exit 1; }

engine_up() { docker info >/dev/null 2>&1; }

stop_ours() {
  [[ -f $PID_FILE ]] || { say "no dockerd started by this script"; return 0; }
  local pid
  pid=$(cat "$PID_FILE")
  # Only the dockerd we started, by PID, and only while that PID still is a dockerd.
  if [[ -n $pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
    [[ -d /proc/$pid ]] && fail "dockerd (pid $pid) did not stop within 20 s"
    say "stopped dockerd (pid $pid)"
  fi
  rm -f "$PID_FILE"
}

# The Compose v2 plugin (`docker compose`) does the job of docker-compose v1: with it, v1 is not
# needed. Asked of the docker client found where need.sh looks, never of a neighbour.
compose_v2() {
  local docker
  docker=$(need_find docker) || return 1
  "$docker" compose version >/dev/null 2>&1
}

plan() {
  local wanted=() pair
  for pair in "${REQUIRED[@]}"; do
    [[ $pair == docker-compose=* ]] && compose_v2 && continue
    wanted+=("$pair")
  done
  need_missing_packages "${wanted[@]}"
}

install_packages() {
  local missing
  mapfile -t missing < <(plan)
  (( ${#missing[@]} )) || return 0
  say "installing ${missing[*]}"
  need_apt_install ensure-docker "${missing[@]}"
}

start_dockerd() {
  [[ $(id -u) -eq 0 ]] || fail "no Docker engine answers and starting dockerd needs root"
  local dockerd
  dockerd=$(need_find dockerd) || fail "dockerd not found (package docker.io)"
  mkdir -p "$STATE_DIR"
  say "starting dockerd (log: $LOG_FILE)"
  # setsid: dockerd outlives this script and is not hit by the caller's Ctrl-C.
  setsid "$dockerd" >>"$LOG_FILE" 2>&1 < /dev/null &
  echo $! > "$PID_FILE"
  local pid deadline
  pid=$(cat "$PID_FILE")
  deadline=$(( $(date +%s) + READY_TIMEOUT_S ))
  until engine_up; do
    [[ -d /proc/$pid ]] || fail "dockerd exited at start; last log line: $(tail -n 1 "$LOG_FILE")"
    (( $(date +%s) < deadline )) || fail "dockerd (pid $pid) not ready after ${READY_TIMEOUT_S}s; see $LOG_FILE"
    sleep 0.5
  done
  say "dockerd ready (pid $pid)"
}

main() {
  case ${1:-} in
    --stop) stop_ours; return ;;
    --plan) plan; return ;;
    "") ;;
    *) fail "unknown option $1 (allowed: --plan, --stop)" ;;
  esac
  install_packages
  if engine_up; then
    say "engine ready: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
  else
    start_dockerd
  fi
  compose_v2 || need_find docker-compose >/dev/null \
    || fail "neither \`docker compose\` (v2) nor docker-compose (v1) found (package docker-compose)"
}

main "$@"
