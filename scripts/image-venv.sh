#!/bin/sh
# Owns the one way the Dockerfile's stages fill the images' venv /opt/flashlab from the
# host-built wheelhouse, offline (pip --no-index): build-images.sh copies this file into the
# build context as .wheelhouse/bin/image-venv and the `os` stage puts it on the PATH.
#   image-venv DIR...
# Creates /opt/flashlab when missing, then per DIR, in order:
#   DIR/requirements.txt present: install those requirements from DIR's wheels (a deps wheelhouse);
#   otherwise: install DIR/*.whl with --no-deps (the project wheel: its full dependency list,
#   ray, pandas, ..., is for the host lab, not for the containers).
# A DIR that is missing or holds nothing installable: one line on stderr, exit 2.
set -eu

# FLASHLAB_IMAGE_VENV: another venv path, for the tests only (they run this on the host).
VENV=${FLASHLAB_IMAGE_VENV:-/opt/flashlab}
PIP="$VENV/bin/pip"

die() {
  echo "image-venv: $*" >&2
  exit 2
}

[ "$#" -gt 0 ] || die "usage: image-venv DIR... (wheel directories: a deps wheelhouse with requirements.txt, or the project wheel)"
# Check every DIR before installing anything: a bad argument must not leave a half-filled venv.
for dir in "$@"; do
  [ -d "$dir" ] || die "$dir: no such directory"
  [ -f "$dir/requirements.txt" ] && continue
  found=0
  for whl in "$dir"/*.whl; do
    [ -f "$whl" ] && found=1
  done
  [ "$found" -eq 1 ] || die "$dir: neither requirements.txt nor a *.whl to install"
done

[ -x "$PIP" ] || python3 -m venv "$VENV"
for dir in "$@"; do
  if [ -f "$dir/requirements.txt" ]; then
    "$PIP" install -q --no-cache-dir --no-index --find-links "$dir" -r "$dir/requirements.txt"
  else
    "$PIP" install -q --no-cache-dir --no-index --no-deps "$dir"/*.whl
  fi
done
