"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def poll(condition: Callable[[], object], what: str, timeout_s: float) -> None:
    """Poll `condition` until true, failing after a bounded deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def run_flashlab(
    *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real entry point (`python -m flashlab.cli`), from the checkout, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "flashlab.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], *needles: str, code: int = 2
) -> str:
    """One stderr line naming the cause, no traceback, exit `code` (2 bad input, 4 infra)."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def descendants(pid: int) -> set[int]:
    """PIDs below `pid` now (empty once it is gone)."""
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


COMPOSE_V2_STUB_VERSION = "2.99.0-stub"


def compose_v2_stub(folder: Path) -> Path:
    """A STUB `docker` in `folder` (put it first on PATH) that plays the Compose v2 plugin.

    Why a stub: the v2 plugin cannot be installed here (Debian bookworm does not package it and
    there is no GitHub access), only docker-compose v1. The stub answers `docker compose version
    [--short]` as the plugin would (version COMPOSE_V2_STUB_VERSION), checks v2's project-name
    rule on `-p` (lowercase letters, digits, `-`, `_`, starting with a letter or digit; v1 would
    quietly rewrite a bad name), forwards `docker compose ARGS...` to the real `docker-compose
    ARGS...` (the flags the lab uses mean the same to both) and any other `docker ...` to the
    real docker client. Each compose call is appended to `folder/compose-calls.log`."""
    real_docker = shutil.which("docker")
    real_v1 = shutil.which("docker-compose")
    assert real_docker and real_v1, "the stub forwards to a real docker and docker-compose"
    folder.mkdir(parents=True, exist_ok=True)
    stub = folder / "docker"
    stub.write_text(f"""#!/bin/sh
# STUB of the Docker Compose v2 plugin (tests/support.py compose_v2_stub says why).
if [ "$1" != compose ]; then exec {real_docker} "$@"; fi
shift
echo "$*" >> {folder}/compose-calls.log
if [ "$1" = version ]; then
  if [ "$2" = --short ]; then echo {COMPOSE_V2_STUB_VERSION}
  else echo "Docker Compose version v{COMPOSE_V2_STUB_VERSION}"; fi
  exit 0
fi
prev=
for arg in "$@"; do
  if [ "$prev" = -p ] && ! printf '%s' "$arg" | grep -Eq '^[a-z0-9][a-z0-9_-]*$'; then
    echo "invalid project name \\"$arg\\": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number" >&2
    exit 1
  fi
  prev=$arg
done
exec {real_v1} "$@"
""")
    stub.chmod(0o755)
    return stub
