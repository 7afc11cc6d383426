"""The fresh-machine install decision (scripts/lib/need.sh via `--plan`), whatever this machine has.

Each test builds a tmp folder of stub executables and points FLASHLAB_BIN_DIRS at it, so the
scripts search only there for the binaries they would execute: the real dockerd, nginx, ... of
this machine (installed or not by someone else) cannot change the answer. PATH keeps /usr/bin and
/bin for the coreutils the scripts themselves use. The stubs are fakes by necessity: the point is
a machine that has *only* a docker client, which this one may or may not be.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENSURE_DOCKER = ROOT / "scripts" / "ensure-docker.sh"
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"


def stub_dir(tmp_path: Path, **scripts: str) -> Path:
    """A folder of executable shell stubs: name -> body (a `docker` client that answers, ...)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, body in scripts.items():
        path = folder / name.replace("_", "-")
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return folder


def plan(script: Path, folder: Path, *args: str) -> list[str]:
    env = {
        "PATH": f"{folder}:/usr/bin:/bin",
        "FLASHLAB_BIN_DIRS": str(folder),
        "HOME": os.environ.get("HOME", "/root"),
    }
    done = subprocess.run(
        ["bash", str(script), "--plan", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


# A docker client without the Compose v2 plugin answers `docker compose ...` as docker 28 does.
DOCKER_CLIENT = (
    '[ "$1" = compose ] && { echo "docker: unknown command: docker compose" >&2; exit 1; }\n'
    'echo "Docker version 28.2.2, build stub"'
)
# A docker client with the v2 plugin: `docker compose version` answers.
DOCKER_WITH_COMPOSE_V2 = (
    '[ "$1 $2" = "compose version" ] && { echo "Docker Compose version v2.29.1"; exit 0; }\n'
    'echo "Docker version 28.2.2, build stub"'
)


def test_a_docker_client_alone_still_gets_the_engine(tmp_path: Path) -> None:
    folder = stub_dir(tmp_path, docker=DOCKER_CLIENT)
    assert plan(ENSURE_DOCKER, folder) == ["docker.io", "docker-compose", "debootstrap"]


def test_engine_compose_and_debootstrap_present_plan_nothing(tmp_path: Path) -> None:
    folder = stub_dir(
        tmp_path,
        docker=DOCKER_CLIENT,
        dockerd="exit 0",
        docker_compose="exit 0",
        debootstrap="exit 0",
    )
    assert plan(ENSURE_DOCKER, folder) == []


def test_the_compose_v2_plugin_stands_in_for_docker_compose(tmp_path: Path) -> None:
    folder = stub_dir(
        tmp_path, docker=DOCKER_WITH_COMPOSE_V2, dockerd="exit 0", debootstrap="exit 0"
    )
    assert plan(ENSURE_DOCKER, folder) == []  # no docker-compose v1 beside the plugin


def test_v2_plugin_on_a_client_alone_plans_the_engine_only(tmp_path: Path) -> None:
    folder = stub_dir(tmp_path, docker=DOCKER_WITH_COMPOSE_V2)
    assert plan(ENSURE_DOCKER, folder) == ["docker.io", "debootstrap"]


def test_only_the_engine_missing_plans_docker_io_alone(tmp_path: Path) -> None:
    folder = stub_dir(tmp_path, docker=DOCKER_CLIENT, docker_compose="exit 0", debootstrap="exit 0")
    assert plan(ENSURE_DOCKER, folder) == ["docker.io"]


def test_bootstrap_plans_every_package_on_a_bare_machine(tmp_path: Path) -> None:
    folder = stub_dir(tmp_path, docker=DOCKER_CLIENT)
    assert plan(BOOTSTRAP, folder, "--test") == [
        "python3",
        "python3-venv",
        "redis-server",
        "nginx-light",
        "prometheus",
        "wrk",
        "chromium",
        "iproute2",  # `ip`: the ray_cluster tests' network namespaces
        "nodejs",  # tests/targets/node-express, a backend the lab did not build
        "npm",
        "postgresql",  # the server (postgres), not the psql client: tests/targets/pg-shop
    ]


def test_bootstrap_wants_the_server_binaries_not_their_clients(tmp_path: Path) -> None:
    # redis-cli is not redis-server; a python3 without ensurepip (Debian without python3-venv)
    # still needs python3-venv. nginx and prometheus are there, so they are not planned.
    folder = stub_dir(
        tmp_path,
        redis_cli="exit 0",
        python3="exit 1",
        nginx="exit 0",
        prometheus="exit 0",
    )
    assert plan(BOOTSTRAP, folder) == ["python3-venv", "redis-server", "wrk"]


def test_bootstrap_with_everything_plans_nothing(tmp_path: Path) -> None:
    folder = stub_dir(
        tmp_path,
        python3="exit 0",
        redis_server="exit 0",
        nginx="exit 0",
        prometheus="exit 0",
        wrk="exit 0",
        chromium="exit 0",
        ip="exit 0",
        node="exit 0",
        npm="exit 0",
        postgres="exit 0",
    )
    assert plan(BOOTSTRAP, folder, "--test") == []


@pytest.mark.parametrize("script", [ENSURE_DOCKER, BOOTSTRAP], ids=["ensure-docker", "bootstrap"])
def test_unknown_option_is_one_line_and_non_zero(script: Path) -> None:
    done = subprocess.run(
        ["bash", str(script), "--frobnicate"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "--frobnicate" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
