"""`flashlab stack` as a user runs it: foreground up + Ctrl-C reaps everything, the detached
up/status/down round trip, stale state, and one-line errors for bad flags or missing binaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import support
from support import assert_one_line_error
from support import run_flashlab

from flashlab.system import procs

ROOT = Path(__file__).resolve().parent.parent
STACK = [sys.executable, "-m", "flashlab.commands.stack"]
DEADLINE_S = 60.0


def stack_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STACK, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def read_state(state_dir: Path) -> dict | None:  # type: ignore[type-arg]
    try:
        return json.loads((state_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return None


def stack_processes(state: dict) -> list[psutil.Process]:  # type: ignore[type-arg]
    """Every process of a running stack, nginx workers included."""
    found = []
    for comp in state["components"]:
        proc = psutil.Process(comp["pid"])
        found.append(proc)
        found.extend(proc.children(recursive=True))
    return found


def poll(condition: Callable[[], object], what: str) -> None:
    support.poll(condition, what, DEADLINE_S)


def test_ctrl_c_on_foreground_up_reaps_every_child(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    log = tmp_path / "up.log"
    up = procs.spawn(
        [
            *STACK,
            "up",
            "--json",
            "--no-prometheus",
            "--workers",
            "2",
            "--state-dir",
            str(state_dir),
        ],
        name="stack-up",
        log_path=log,
        cwd=ROOT,
    )
    try:
        poll(
            lambda: (
                (read_state(state_dir) or {}).get("supervisor_pid") == up.pid
                or up.popen.poll() is not None
            ),
            "stack.json from the foreground supervisor",
        )
        assert up.popen.poll() is None, log.read_text()
        printed = json.loads(log.read_text())  # --json prints exactly one document
        assert printed["supervisor_pid"] == up.pid
        state = read_state(state_dir)
        assert state is not None
        assert httpx.get(f"{state['base_url']}/readyz", timeout=5).status_code == 200
        children = stack_processes(state)
        assert len(children) >= 5
        workdir = Path(state["workdir"])
        os.kill(up.pid, signal.SIGINT)  # what Ctrl-C in its terminal delivers
        assert procs.wait(up.pid, DEADLINE_S), "supervisor did not exit after SIGINT"
        assert up.popen.returncode == 0, log.read_text()
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
        assert not (state_dir / "stack.json").exists()
        assert not workdir.exists()
    finally:
        if procs.is_alive(up.pid):
            procs.terminate(up.pid)


def test_detach_status_down_round_trip(tmp_path: Path) -> None:
    state_dir = str(tmp_path / "state")
    up = stack_cli(
        "up", "--detach", "--json", "--no-prometheus", "--workers", "1", "--state-dir", state_dir
    )
    state = read_state(Path(state_dir))
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        assert state is not None and info["supervisor_pid"] == state["supervisor_pid"]
        supervisor = psutil.Process(info["supervisor_pid"])
        assert httpx.get(f"{info['base_url']}/readyz", timeout=5).status_code == 200

        status = stack_cli("status", "--json", "--state-dir", state_dir)
        assert status.returncode == 0, status.stderr
        live = json.loads(status.stdout)
        assert [c["name"] for c in live["components"]] == ["redis", "api-0", "nginx"]
        assert all(c["running"] for c in live["components"])
        table = stack_cli("status", "--state-dir", state_dir)
        assert (
            table.returncode == 0 and info["base_url"] in table.stdout and "api-0" in table.stdout
        )

        again = stack_cli("up", "--detach", "--state-dir", state_dir)
        assert_one_line_error(again, "already running", str(supervisor.pid))

        children = stack_processes(live)
        down = stack_cli("down", "--state-dir", state_dir)
        assert down.returncode == 0, down.stderr
        assert not supervisor.is_running()
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
        assert not (Path(state_dir) / "stack.json").exists()
        assert_one_line_error(stack_cli("status", "--state-dir", state_dir), "no stack running")
        assert_one_line_error(stack_cli("down", "--state-dir", state_dir), "no stack running")
    finally:
        # The detached supervisor is not our child: stop it through its own state file.
        leftover = read_state(Path(state_dir))
        if leftover and psutil.pid_exists(leftover["supervisor_pid"]):
            stack_cli("down", "--state-dir", state_dir)


def test_stale_state_file(tmp_path: Path) -> None:
    gone = procs.spawn([sys.executable, "-c", "pass"], name="short-lived")
    assert procs.wait(gone.pid, DEADLINE_S)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "stack.json").write_text(
        json.dumps(
            {
                "platform": "local",
                "base_url": "http://127.0.0.1:1",
                "redis_url": "redis://127.0.0.1:2/0",
                "admin_token": "t",
                "components": [],
                "supervisor_pid": gone.pid,
            }
        )
    )
    assert_one_line_error(
        stack_cli("status", "--state-dir", str(state_dir)), "stale", str(gone.pid), code=4
    )
    down = stack_cli("down", "--state-dir", str(state_dir))
    assert down.returncode == 0 and "stale" in down.stdout
    assert not (state_dir / "stack.json").exists()
    (state_dir / "stack.json").write_text("{not json")
    assert_one_line_error(stack_cli("status", "--state-dir", str(state_dir)), "not a valid")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--durability", "sometimes"], ("--durability", "aof-always")),
        (["--workers", "0"], ("--workers",)),
        (["--platform", "k8s"], ("--platform", "compose")),
    ],
)
def test_bad_flags_are_one_line_errors(
    tmp_path: Path, args: list[str], needles: tuple[str, ...]
) -> None:
    proc = stack_cli("up", *args, "--state-dir", str(tmp_path))
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "stack.json").exists()


def test_missing_binaries_name_the_apt_package(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no redis-server, no nginx
    assert_one_line_error(
        stack_cli("up", "--state-dir", str(tmp_path), env=env),
        "redis-server not found",
        "apt-get install redis-server",
        code=4,  # the stack cannot start: infrastructure, not the user's flags
    )


def test_help_has_examples_and_is_mounted_in_the_root_cli() -> None:
    for command in ("up", "status", "down"):
        proc = stack_cli(command, "--help")
        assert proc.returncode == 0 and "Examples" in proc.stdout, command
    root = run_flashlab("stack", "--help", timeout=60)
    assert root.returncode == 0 and "status" in root.stdout and "down" in root.stdout


def test_sigkilled_supervisor_takes_its_stack_with_it(tmp_path: Path) -> None:
    """A crashed supervisor leaves no process behind (PDEATHSIG) and a stale file `down` clears."""
    state_dir = str(tmp_path / "state")
    up = stack_cli(
        "up", "--detach", "--json", "--no-prometheus", "--workers", "1", "--state-dir", state_dir
    )
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    supervisor = psutil.Process(info["supervisor_pid"])
    try:
        children = stack_processes(info)
        supervisor.kill()
        _, alive = psutil.wait_procs([supervisor, *children], timeout=DEADLINE_S)
        assert alive == []  # nginx's workers too: its master got SIGTERM and stopped them
        assert_one_line_error(stack_cli("status", "--state-dir", state_dir), "stale", code=4)
        down = stack_cli("down", "--state-dir", state_dir)
        assert down.returncode == 0 and "already gone" in down.stdout
        assert not (Path(state_dir) / "stack.json").exists()
    finally:
        if supervisor.is_running():
            supervisor.kill()
