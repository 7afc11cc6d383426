"""The Compose images: the digest of the sources baked into them, whether an image is current, the build.

An image carries the digest of the sources it was built from (label `flashlab.source`); one
labelled otherwise is stale. `ensure_images` rebuilds (scripts/build-images.sh, offline) when
the build policy says so: `always`, or `auto` when an image is missing or stale. Host side,
`python -m flashlab.system.platforms.images source-hash` prints the digest the build script
labels the images with.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Literal

from flashlab.core.platform import StackStartError
from flashlab.core.provenance import checkout_root

if TYPE_CHECKING:
    import docker

# The checkout the images build from; installed as a plain package there is none, and
# flashlab.system.platforms.require_platform("compose") refuses before anything starts.
REPO_ROOT = checkout_root() or Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-images.sh"
APP_IMAGE = "flashlab-app"
PROMETHEUS_IMAGE = "flashlab-prometheus"
RAY_IMAGE = "flashlab-ray"
SOURCE_LABEL = "flashlab.source"  # image label: hash of the sources baked into it

BuildPolicy = Literal["auto", "always", "never"]
BUILD_POLICIES: tuple[str, ...] = ("auto", "always", "never")
BUILD_TIMEOUT_S = 1200.0


def _source_files() -> Iterator[Path]:
    """What goes into the images: the packages the containers import, the build recipe."""
    for package in ("system", "chaos", "simulator", "flashlab/core"):
        for path in sorted((REPO_ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                yield path
    for name in (
        "pyproject.toml",
        "Dockerfile",
        "scripts/build-images.sh",
        "scripts/image-venv.sh",
    ):
        yield REPO_ROOT / name


def source_hash() -> str:
    """A stable digest of every file baked into the images; an image labelled otherwise is stale."""
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_state(client: docker.DockerClient, image: str, want: str) -> str:
    """'missing', 'stale' (built from other sources) or 'current'."""
    # start-up cost: `source-hash` and the compose-file readers never load the Docker SDK.
    import docker.errors

    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return "missing"
    return "current" if labels.get(SOURCE_LABEL) == want else "stale"


def ensure_images(
    client: docker.DockerClient,
    *,
    policy: str,
    tag: str,
    prometheus: bool,
    ray: bool,
    log_path: Path,
) -> None:
    """Build the images a stack needs when `policy` says so: `always`, or (`auto`) when one of
    them is missing or stale; `never` builds nothing."""
    if policy == "never":
        return
    want = source_hash()
    images = [APP_IMAGE] + ([PROMETHEUS_IMAGE] if prometheus else [])
    images += [RAY_IMAGE] if ray else []
    states = {i: image_state(client, f"{i}:{tag}", want) for i in images}
    if policy == "always" or any(s != "current" for s in states.values()):
        build_images(prometheus=prometheus, log_path=log_path, ray=ray)


def build_images(*, prometheus: bool, log_path: Path, ray: bool = False) -> None:
    """Run scripts/build-images.sh (offline base + wheelhouse + docker build), bounded in time."""
    if not BUILD_SCRIPT.exists():
        raise StackStartError(
            f"{BUILD_SCRIPT} not found: the compose platform needs a flashlab checkout"
        )
    cmd = [str(BUILD_SCRIPT), *([] if prometheus else ["--no-prometheus"])]
    cmd += ["--ray"] if ray else []
    with log_path.open("ab") as log:
        try:
            done = subprocess.run(
                cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise StackStartError(
                f"image build exceeded {BUILD_TIMEOUT_S:.0f}s (log: {log_path})"
            ) from None
    if done.returncode != 0:
        raise StackStartError(f"image build failed: {_last_line(log_path)} (log: {log_path})")


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def main(argv: list[str] | None = None) -> int:
    """`source-hash`: print the digest the image build labels its images with (host side).
    The containers' own entrypoint is `flashlab.system.platforms.compose_entry`."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["source-hash"]:
        print("usage: python -m flashlab.system.platforms.images source-hash", file=sys.stderr)
        return 2
    print(source_hash())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
