"""Facts about where and with what a run was made: versions, git revision, host, the checkout (if any).

`checkout_root()` is the one place that decides whether flashlab runs from its repository (an
editable install: Compose's Dockerfile, notebooks/, bench/results.jsonl are there) or from a
plain `pip install` (only the package: reports go to ./reports of the working directory).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from flashlab.core.errors import UserError

_PACKAGES = (
    "flashlab",
    "fastapi",
    "uvicorn",
    "redis",
    "aiohttp",
    "httpx",
    "ray",
    "pyarrow",
    "pandas",
)


def _version_of(binary: str, *args: str) -> str | None:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if not path:
        return None
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (
        (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else None
    )


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["redis-server"] = _version_of("redis-server", "--version")
    found["nginx"] = _version_of("nginx", "-v")
    return found


def checkout_root() -> Path | None:
    """The flashlab repository this code runs from, or None when installed as a plain package."""
    # This file sits at <repo>/flashlab/core/provenance.py in a checkout, and at
    # site-packages/flashlab/core/provenance.py once installed (no pyproject or system/ folder there).
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "system" / "api" / "app.py").is_file():
        return root
    return None


def require_checkout(what: str) -> Path:
    """The checkout root, or a UserError (one line, exit 2) saying `what` needs the repository."""
    root = checkout_root()
    if root is None:
        raise UserError(
            f"{what} needs a flashlab checkout (git clone the repository and run it from there); "
            "this flashlab is installed as a package"
        )
    return root


def git_revision(root: Path | None = None) -> dict[str, Any]:
    root = root or checkout_root() or Path.cwd()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "-uno"))}


def host() -> dict[str, Any]:
    # start-up cost: only this path pays for psutil
    import psutil

    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "machine": platform.machine(),
        # how busy the (shared) machine was when the run started: timing figures need it
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def command_line() -> str:
    """The command this process was started with, as a shell line (`flashlab run lua --repeat 3`)."""
    if not sys.argv or not sys.argv[0]:
        return ""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def provenance(experiment: dict[str, Any]) -> dict[str, Any]:
    """The manifest's record of how a run, trial set or sweep was made: the experiment as given
    (JSON), the command line, when it started, package and tool versions, git revision, host."""
    return {
        "experiment": experiment,
        "command": command_line(),
        "started_at": datetime.now(UTC).isoformat(),
        "versions": versions(),
        "git_revision": git_revision(),
        "host": host(),
    }
