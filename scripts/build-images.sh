#!/usr/bin/env bash
# Build the Compose images with NO image registry: a debootstrap'd Debian base (cached), a
# host-built wheelhouse of only the API's runtime deps (+ the project), then `docker build`
# (whose stages fill their venv with scripts/image-venv.sh, staged as .wheelhouse/bin/image-venv).
#   scripts/build-images.sh [--base IMAGE] [--no-prometheus] [--force-base] [--ray] [--base-only]
#     --base IMAGE     use IMAGE as the base instead (e.g. debian:bookworm-slim where a registry works)
#     --no-prometheus  build only the app image (api, redis, nginx, proxy)
#     --force-base     rebuild flashlab-base:bookworm even when it exists
#     --ray            also build flashlab-ray (the compose `ray` profile: Ray head and worker)
#     --base-only      only the debootstrap'd base (cached): what a target's own Dockerfile starts
#                      from (targets/node-compose.yaml)
# Env: FLASHLAB_APT_MIRROR (default: the host's apt mirror), FLASHLAB_IMAGE_TAG (default: latest).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_TAG=flashlab-base:bookworm
TAG=${FLASHLAB_IMAGE_TAG:-latest}
OS_IMAGE=flashlab-os:$TAG
APP_IMAGE=flashlab-app:$TAG
PROM_IMAGE=flashlab-prometheus:$TAG
RAY_IMAGE=flashlab-ray:$TAG
WHEELHOUSE=.wheelhouse
PY=.venv/bin/python
# What the containers import: flashlab.system.api (API), flashlab.system.config (config rendering at container
# start), flashlab.chaos.proxy (fault proxy). No ray/pandas: they never run inside a container.
RUNTIME_REQS=(fastapi "uvicorn[standard]" "redis[hiredis]" prometheus-client orjson pydantic
  uvloop httptools jinja2 aiohttp httpx)
# The ray image (--ray) runs shopper actors: Ray itself and what flashlab.simulator imports.
RAY_REQS=("ray[client]" numpy pandas pyarrow psutil pydantic orjson aiohttp httpx httptools uvloop)

base=$BASE_TAG
build_prom=1
build_ray=0
force_base=0
base_only=0
while (( $# )); do
  case $1 in
    --base) [[ -n ${2:-} ]] || { echo "build-images: --base needs an image name" >&2; exit 2; }
            base=$2; shift ;;
    --no-prometheus) build_prom=0 ;;
    --force-base) force_base=1 ;;
    --ray) build_ray=1 ;;
    --base-only) base_only=1 ;;
    *) echo "build-images: unknown option $1 (allowed: --base IMAGE, --no-prometheus, --force-base, --ray, --base-only)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\033[1;34m[build-images]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[build-images] error:\033[0m %s\n' "$*" >&2; exit 1; }

[[ -x $PY ]] || fail "no $PY; run scripts/bootstrap.sh first"
docker info >/dev/null 2>&1 || fail "no Docker engine answers; run scripts/ensure-docker.sh first"

# The Debian mirror the host's apt uses (never a hard-coded host name): first the override,
# then one-line sources.list entries, then deb822 .sources paragraphs, for suite "bookworm".
apt_mirror() {
  if [[ -n ${FLASHLAB_APT_MIRROR:-} ]]; then echo "$FLASHLAB_APT_MIRROR"; return; fi
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '$1 == "deb" { for (i = 2; i < NF; i++) if ($i ~ /^https?:/ && $(i+1) == "bookworm") { print $i; exit } }')
  if [[ -z $m ]]; then
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'BEGIN { RS = "" } {
          uri = ""; hit = 0
          n = split($0, lines, "\n")
          for (k = 1; k <= n; k++) {
            if (lines[k] ~ /^URIs:/) { split(lines[k], f, /[ \t]+/); uri = f[2] }
            if (lines[k] ~ /^Suites:/ && lines[k] ~ /[ \t]bookworm([ \t]|$)/) hit = 1
          }
          if (hit && uri ~ /^https?:/) { print uri; exit }
        }')
  fi
  [[ -n $m ]] || fail "cannot find a Debian bookworm mirror in /etc/apt/sources*; set FLASHLAB_APT_MIRROR"
  echo "$m"
}

make_base() {
  if (( ! force_base )) && docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    say "base $BASE_TAG cached"; return
  fi
  command -v debootstrap >/dev/null || fail "debootstrap not found (apt-get install debootstrap)"
  local mirror root t0
  mirror=$(apt_mirror)
  root=$(mktemp -d /var/tmp/flashlab-rootfs.XXXXXX)
  # Remove the rootfs whatever happens (it is ~150 MB of root-owned files).
  ROOTFS=$root
  trap 'rm -rf "$ROOTFS"' EXIT
  t0=$(date +%s)
  say "debootstrap bookworm from $mirror (about 30 s)"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -n 5 "$root.log" >&2; fail "debootstrap failed (log: $root.log)"; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$BASE_TAG" >/dev/null
  rm -rf "$root"; trap - EXIT
  say "base $BASE_TAG imported in $(( $(date +%s) - t0 ))s"
}

# Pinned to the versions in .venv, so containers run exactly what the host tests run.
make_wheelhouse() {
  mkdir -p "$WHEELHOUSE/project"
  "$PY" -m pip freeze --exclude-editable | grep -v '^-e ' > "$WHEELHOUSE/constraints.txt"
  deps_wheelhouse deps "${RUNTIME_REQS[@]}"
  (( build_ray )) && deps_wheelhouse ray "${RAY_REQS[@]}"
  local log=$WHEELHOUSE/pip.log
  rm -f "$WHEELHOUSE"/project/*.whl
  # Fixed timestamps: an unchanged tree gives a byte-identical wheel, so docker's cache holds.
  SOURCE_DATE_EPOCH=315532800 "$PY" -m pip wheel --no-deps -w "$WHEELHOUSE/project" . >"$log" 2>&1 \
    || { grep -E '^ERROR' "$log" >&2; fail "pip wheel of the project failed (log: $log)"; }
}

deps_wheelhouse() {  # deps_wheelhouse DIR REQ...: wheels of REQ (pinned) for the image's Python
  local name=$1; shift
  local dir=$WHEELHOUSE/$name constraints=$WHEELHOUSE/constraints.txt log=$WHEELHOUSE/pip-$name.log key
  local stamp=$WHEELHOUSE/$name.stamp
  mkdir -p "$dir"
  printf '%s\n' "$@" > "$dir/requirements.txt"
  # Same requirements, same pins, same image Python: the wheelhouse from last time still fits.
  # The `os` image's layers, not its id: the id also covers the flashlab.source label, which
  # changes with every code edit and would rebuild the wheelhouse for nothing.
  key=$(cat "$dir/requirements.txt" "$constraints" <(docker image inspect -f '{{.RootFS.Layers}}' "$OS_IMAGE") | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat "$stamp") == "$key" ]]; then
    say "wheelhouse $name cached"
    return
  fi
  say "wheelhouse $name: $*"
  rm -f "$dir"/*.whl
  "$PY" -m pip wheel --only-binary=:all: -c "$constraints" -r "$dir/requirements.txt" -w "$dir" >"$log" 2>&1 \
    || { grep -E '^ERROR' "$log" >&2; fail "pip wheel of the $name wheelhouse failed (log: $log)"; }
  complete_for_image "$dir" "$log"
  echo "$key" > "$stamp"
}

# The host resolved markers for ITS Python (e.g. 3.11.7); the image's may differ (bookworm:
# 3.11.2 needs async-timeout, 3.11.7 does not). Ask the image's own pip (run from Debian's pip
# wheel: no venv needed for a dry run), offline, what is missing; fetch it on the host; repeat.
complete_for_image() {  # complete_for_image DIR LOG
  local dir=$1 log=$2 constraints=$WHEELHOUSE/constraints.txt round missing out
  for round in 1 2 3 4 5; do
    out=$(docker run --rm --network none -e PIP_DISABLE_PIP_VERSION_CHECK=1 \
      -v "$PWD/$dir:/w:ro" "$OS_IMAGE" sh -c \
      'python3 "$(ls /usr/share/python-wheels/pip-*.whl | head -n 1)/pip" install --dry-run --break-system-packages --no-index --find-links /w -r /w/requirements.txt 2>&1' || true)
    missing=$(sed -n 's/^ERROR: No matching distribution found for \([^;]*\).*/\1/p' <<<"$out")
    if [[ -z $missing ]]; then
      grep -q '^Would install' <<<"$out" || { echo "$out" | tail -n 5 >&2; fail "the image's pip cannot resolve $dir"; }
      return 0
    fi
    say "image's Python also needs: $missing (round $round)"
    "$PY" -m pip download --only-binary=:all: -c "$constraints" -d "$dir" "$missing" >"$log" 2>&1 \
      || { grep -E '^ERROR' "$log" >&2; fail "pip download $missing failed (log: $log)"; }
  done
  fail "$dir is still incomplete for the image after 5 rounds"
}

# The Dockerfile's one venv installer (scripts/image-venv.sh), put where the build context admits
# it. Rewritten only when its content changed (the classic builder's COPY cache ignores mtimes
# anyway): an unchanged script keeps the cached `os` layers, and with them the wheelhouse stamps;
# an edited one changes those layers, so the wheelhouses are rebuilt once.
stage_image_venv() {
  local src=scripts/image-venv.sh dst=$WHEELHOUSE/bin/image-venv
  mkdir -p "$WHEELHOUSE/bin"
  cmp -s "$src" "$dst" || cp "$src" "$dst"
  chmod 0755 "$dst"
}

build() {  # build TARGET IMAGE
  local t0
  t0=$(date +%s)
  # The classic builder: works offline (BuildKit would try to fetch its frontend image).
  DOCKER_BUILDKIT=0 docker build -q --force-rm --network host --build-arg "BASE=$base" \
    --label "flashlab.source=$SOURCE_HASH" \
    --target "$1" -t "$2" . >/dev/null 2>"$WHEELHOUSE/build-$1.log" \
    || { tail -n 15 "$WHEELHOUSE/build-$1.log" >&2; fail "docker build --target $1 failed (log: $WHEELHOUSE/build-$1.log)"; }
  say "$2 built in $(( $(date +%s) - t0 ))s ($(docker image inspect -f '{{.Size}}' "$2" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

t_start=$(date +%s)
mkdir -p "$WHEELHOUSE"
if (( base_only )); then make_base; exit 0; fi
# One build at a time per checkout: concurrent runs would overwrite each other's wheelhouse.
exec 9>"$WHEELHOUSE/.lock"
flock -w 1200 9 || fail "another build-images.sh held $WHEELHOUSE/.lock for 20 min"
# The platform compares this label with the tree to know whether the images are current.
SOURCE_HASH=$("$PY" -m flashlab.system.platforms.images source-hash) || fail "cannot hash the sources"
[[ $base == "$BASE_TAG" ]] && make_base
stage_image_venv
build os "$OS_IMAGE"  # the image's Python decides which wheels it needs
make_wheelhouse
build app "$APP_IMAGE"
(( build_prom )) && build prometheus "$PROM_IMAGE"
(( build_ray )) && build ray "$RAY_IMAGE"
say "done in $(( $(date +%s) - t_start ))s"
