"""Which Compose command line runs a project: the v2 plugin `docker compose`, else docker-compose v1.

`find_compose()` asks `docker compose version --short` first (the plugin answers it; a docker
client without the plugin exits non-zero), then `docker-compose version --short`, and raises
DockerUnavailable - one line naming both - when neither answers. A binary counts as installed
where scripts/lib/need.sh looks for it: the PATH, then the sbin folders. The answer is cached per
PATH (a docker-compose v1 takes ~0.5 s to say its version).

Both command lines take what the lab uses the same way (`-p`, `-f`, `--project-directory`,
`up -d --no-build --remove-orphans [--build]`, `down -v --remove-orphans -t N`, the
COMPOSE_PROFILES variable) and label containers `com.docker.compose.project`/`.service` alike.
They differ in project names: v1 silently drops characters outside [a-z0-9_-] (so its labels no
longer equal the name asked for), v2 refuses them. `project_name()` makes names both take as
they are.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from flashlab.core.platform import DockerUnavailable

# Searched after the PATH, as scripts/lib/need.sh does.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
VERSION_TIMEOUT_S = 20.0
_NOT_IN_NAME = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class ComposeCli:
    """A Compose command line that answered: what to run, how a user types it, its version."""

    argv: tuple[str, ...]  # the prefix to run: (/path/docker, "compose") or (/path/docker-compose,)
    command: str  # "docker compose" or "docker-compose"
    version: str  # its `version --short` answer, e.g. "2.29.1" or "1.29.2"

    def record(self) -> dict[str, str]:
        """What the run manifest keeps (`stack.extra.compose`)."""
        return {"command": self.command, "version": self.version}


def find_binary(name: str, path: str | None = None) -> str | None:
    """The executable `name` on `path` (default: $PATH), then in the sbin folders; None if absent."""
    search = os.environ.get("PATH", os.defpath) if path is None else path
    dirs = [d for d in search.split(os.pathsep) if d] + list(SBIN_DIRS)
    return shutil.which(name, path=os.pathsep.join(dirs))


def _version(argv: list[str]) -> str | None:
    """The first line `ARGV version --short` prints, or None when it does not answer."""
    try:
        done = subprocess.run(
            [*argv, "version", "--short"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return None
    return lines[0].strip()


@functools.lru_cache(maxsize=8)
def _find(path: str) -> ComposeCli:
    docker = find_binary("docker", path)
    if docker is not None:
        version = _version([docker, "compose"])
        if version is not None:
            return ComposeCli((docker, "compose"), "docker compose", version)
    v1 = find_binary("docker-compose", path)
    if v1 is not None:
        version = _version([v1])
        if version is not None:
            return ComposeCli((v1,), "docker-compose", version)
    raise DockerUnavailable(
        "neither `docker compose` (the v2 plugin) nor docker-compose (v1) answers; "
        "run scripts/ensure-docker.sh"
    )


def find_compose() -> ComposeCli:
    """The v2 plugin when `docker compose version` answers, else docker-compose v1.

    Raises DockerUnavailable (one line) when neither does."""
    return _find(os.environ.get("PATH", os.defpath))


def project_name(*parts: str) -> str:
    """`parts` joined by "-", lower case, every run of characters outside [a-z0-9_-] made one "-".

    v2 accepts the result and v1 keeps it unchanged, so the project label equals the name. The
    first part should start with a letter or digit (v2 requires it): the lab's start "flashlab"."""
    return _NOT_IN_NAME.sub("-", "-".join(parts).lower())
