"""Which Compose runs a project: the v2 plugin when `docker compose version` answers, else v1, else one line.

The v2 plugin cannot be installed on this machine (no Debian bookworm package, no GitHub
access), so the v2 cases use a STUB `docker` (tests/support.py `compose_v2_stub`) that answers
`compose version` as the plugin does and forwards `compose ARGS...` to the real docker-compose v1.
The v1 cases use the real docker-compose (Debian's 1.29.2 here). PATH is set per test to a tmp
folder, so what this machine has elsewhere on its PATH cannot change the answer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support import COMPOSE_V2_STUB_VERSION
from support import ROOT
from support import assert_one_line_error
from support import compose_v2_stub
from support import run_flashlab

from flashlab.core.platform import DockerUnavailable
from flashlab.core.platform import StackConfig
from flashlab.system.platforms.compose import ComposePlatform
from flashlab.system.platforms.compose_cli import find_binary
from flashlab.system.platforms.compose_cli import find_compose
from flashlab.system.platforms.compose_cli import project_name

REAL_DOCKER = shutil.which("docker")
REAL_V1 = shutil.which("docker-compose")
needs_real = pytest.mark.skipif(
    not (REAL_DOCKER and REAL_V1),
    reason="needs docker and docker-compose (make test installs them)",
)
V2_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _real_docker_has_plugin() -> bool:
    assert REAL_DOCKER is not None
    done = subprocess.run([REAL_DOCKER, "compose", "version"], capture_output=True, timeout=30)
    return done.returncode == 0


def _links(folder: Path, **targets: str | None) -> Path:
    """`folder` holding a symlink name -> target for each given binary (`docker_compose` = docker-compose)."""
    folder.mkdir()
    for name, target in targets.items():
        assert target is not None
        (folder / name.replace("_", "-")).symlink_to(target)
    return folder


@needs_real
def test_the_v2_plugin_first_on_path_is_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = compose_v2_stub(tmp_path / "v2")
    assert REAL_V1 is not None
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{Path(REAL_V1).parent}")
    cli = find_compose()
    assert cli.argv == (str(stub), "compose")
    assert cli.record() == {"command": "docker compose", "version": COMPOSE_V2_STUB_VERSION}


@needs_real
def test_docker_compose_v1_when_the_plugin_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _real_docker_has_plugin():
        pytest.skip("this docker client has the v2 plugin: it would rightly be chosen")
    folder = _links(tmp_path / "bin", docker=REAL_DOCKER, docker_compose=REAL_V1)
    monkeypatch.setenv("PATH", str(folder))
    cli = find_compose()
    assert cli.argv == (str(folder / "docker-compose"),)
    assert cli.command == "docker-compose"
    assert cli.version.startswith("1.")  # Debian bookworm's 1.29.2


@needs_real
def test_docker_compose_v1_without_any_docker_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _links(tmp_path / "bin", docker_compose=REAL_V1)
    monkeypatch.setenv("PATH", str(folder))
    assert find_compose().command == "docker-compose"


def test_neither_is_one_line_naming_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert find_binary("docker") is None and find_binary("docker-compose") is None
    with pytest.raises(DockerUnavailable) as caught:
        find_compose()
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert "`docker compose`" in message and "docker-compose (v1)" in message
    assert "scripts/ensure-docker.sh" in message


@needs_real
def test_a_docker_client_without_plugin_nor_v1_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _real_docker_has_plugin():
        pytest.skip("this docker client has the v2 plugin")
    monkeypatch.setenv("PATH", str(_links(tmp_path / "bin", docker=REAL_DOCKER)))
    with pytest.raises(DockerUnavailable, match="docker-compose"):
        find_compose()


def test_the_platform_refuses_before_building_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    platform = ComposePlatform(StackConfig(workdir=str(tmp_path / "work")))
    with pytest.raises(DockerUnavailable, match="docker compose"):
        platform.start()
    assert platform.project is None
    assert not (tmp_path / "work").exists()  # no workdir, no image build, no project


def test_the_cli_says_it_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_flashlab(
        "target", "probe", str(ROOT / "targets" / "node-compose.yaml"),
        timeout=120, env={**os.environ, "PATH": str(empty)},
    )  # fmt: skip
    # `target probe` reports any start failure as the file's (exit 2), before its setup runs.
    assert_one_line_error(proc, "docker compose", "docker-compose", code=2)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("flashlab", "node-compose", "a1b2c3"), "flashlab-node-compose-a1b2c3"),
        (("flashlab", "Shop.API", "a1b2c3"), "flashlab-shop-api-a1b2c3"),  # v1 would drop "."
        (("flashlab", "my_shop..v2", "00"), "flashlab-my_shop-v2-00"),
    ],
)
def test_project_names_are_valid_for_v2_and_unchanged_by_v1(
    parts: tuple[str, ...], expected: str
) -> None:
    name = project_name(*parts)
    assert name == expected
    assert V2_PROJECT_NAME.match(name)
    # docker-compose v1's own normalisation (compose/cli/command.py normalize_name) keeps it.
    assert re.sub(r"[^-_a-z0-9]", "", name.lower()) == name
