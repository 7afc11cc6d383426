# shellcheck shell=bash
# The one install decision for the setup scripts: is the binary that will actually be EXECUTED
# there, and which Debian package brings it. Sourced by scripts/bootstrap.sh and
# scripts/ensure-docker.sh; never executed on its own.
#
# A binary counts as present only when an executable file of that exact name sits in one of the
# search directories: the PATH plus the sbin directories (where Debian puts nginx, dockerd and
# debootstrap even when root's PATH lacks them) and /usr/lib/postgresql/*/bin (the server). A `docker` CLIENT on the PATH therefore does not
# stand in for the engine `dockerd`, nor `redis-cli` for `redis-server`.
#
# FLASHLAB_BIN_DIRS (colon-separated) replaces the search directories: the tests point it at a
# tmp folder holding stubs to see what a fresh machine would be given, whatever this one has.

need_dirs() {
  if [[ -n ${FLASHLAB_BIN_DIRS:-} ]]; then
    printf '%s\n' "$FLASHLAB_BIN_DIRS" | tr ':' '\n'
  else
    printf '%s\n' "$PATH" | tr ':' '\n'
    printf '%s\n' /usr/local/sbin /usr/sbin /sbin
    # Debian keeps the PostgreSQL server (postgres, initdb) in a versioned folder off the PATH.
    compgen -G '/usr/lib/postgresql/*/bin' || true
  fi
}

# need_find BIN: print the full path of BIN in the search directories; status 1 when absent.
need_find() {
  local dir
  while IFS= read -r dir; do
    [[ -n $dir && -f $dir/$1 && -x $dir/$1 ]] && { printf '%s\n' "$dir/$1"; return 0; }
  done < <(need_dirs)
  return 1
}

# need_missing_packages BIN=PACKAGE...: print each package (once, in order) whose binary is absent.
need_missing_packages() {
  local pair bin pkg
  local -A seen=()
  for pair in "$@"; do
    bin=${pair%%=*}
    pkg=${pair#*=}
    need_find "$bin" >/dev/null && continue
    [[ -n ${seen[$pkg]:-} ]] && continue
    seen[$pkg]=1
    printf '%s\n' "$pkg"
  done
}

# need_apt_install PREFIX PACKAGE...: install with apt-get as root; one line and exit 1 otherwise.
need_apt_install() {
  local who=$1
  shift
  (( $# )) || return 0
  [[ $(id -u) -eq 0 ]] || { printf '[%s] error: missing %s; run as root or apt-get install %s\n' "$who" "$*" "$*" >&2; exit 1; }
  command -v apt-get >/dev/null || { printf '[%s] error: missing %s and no apt-get to install them\n' "$who" "$*" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  # Another setup script may hold the dpkg lock (parallel checkouts): wait for it, bounded.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null \
    || { printf '[%s] error: apt-get install %s failed\n' "$who" "$*" >&2; exit 1; }
}
