#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`: install the Debian packages when root and
# missing, start `dockerd` by hand when none runs (no systemd here), wait until it is ready.
# Idempotent. Exits non-zero with one clear line when the engine cannot be made to answer.
#   scripts/ensure-docker.sh          ensure the engine (and docker-compose, debootstrap)
#   scripts/ensure-docker.sh --stop   stop a dockerd that THIS script started (by its PID file)
set -euo pipefail

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

install_packages() {
  local missing=()
  command -v docker >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  (( ${#missing[@]} )) || return 0
  [[ $(id -u) -eq 0 ]] || fail "missing ${missing[*]}; run as root or apt-get install ${missing[*]}"
  command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]} failed"
}

start_dockerd() {
  [[ $(id -u) -eq 0 ]] || fail "no Docker engine answers and starting dockerd needs root"
  command -v dockerd >/dev/null || fail "dockerd not found (package docker.io)"
  mkdir -p "$STATE_DIR"
  say "starting dockerd (log: $LOG_FILE)"
  # setsid: dockerd outlives this script and is not hit by the caller's Ctrl-C.
  setsid dockerd >>"$LOG_FILE" 2>&1 < /dev/null &
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
  if [[ ${1:-} == --stop ]]; then stop_ours; return; fi
  install_packages
  if engine_up; then
    say "engine ready: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
  else
    start_dockerd
  fi
  command -v docker-compose >/dev/null || fail "docker-compose not found (package docker-compose)"
}

main "$@"
