"""`flashlab stack up|status|down`: run a stack in the foreground or as a detached supervisor,
described by a state file (`.flashlab/stack.json`) that `status` and `down` read.

The supervisor is the one process that owns the platform: in the foreground that is this CLI
process (Ctrl-C stops and reaps everything); with `--detach` it is a re-execution of this module
(`_serve`) in its own session, which `down` stops with SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import psutil
import typer
from rich.table import Table

from flashlab.commands.cpus import CpusOpt
from flashlab.commands.cpus import IsolationOpt
from flashlab.commands.cpus import isolation_overrides
from flashlab.commands.errors import FlashlabGroup
from flashlab.console import console
from flashlab.console import die
from flashlab.console import emit_json
from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import EXIT_INFRA
from flashlab.core.isolation import Isolation
from flashlab.core.isolation import IsolationError
from flashlab.core.isolation import resolve
from flashlab.core.platform import PLATFORM_NAMES
from flashlab.core.platform import Platform
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import PlatformError
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.core.platform import durability_problem
from flashlab.core.rundir import write_text_atomic

STATE_ENV = "FLASHLAB_STATE_DIR"
DEFAULT_STATE_DIR = ".flashlab"
STATE_FILE = "stack.json"
SUPERVISOR_LOG = "supervisor.log"
DETACH_TIMEOUT_S = 180.0  # compose may build images on first use
DOWN_TIMEOUT_S = 60.0
REFRESH_S = 1.0  # how often a supervisor rewrites the state file (respawned worker PIDs)
MAX_WORKERS = 64

app = typer.Typer(
    name="stack",
    help="Start, inspect and stop a flash-sale stack (nginx -> FastAPI workers -> Redis).",
    no_args_is_help=True,
    cls=FlashlabGroup,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StateDirOpt = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar=STATE_ENV,
        help="Where stack.json and the supervisor log live.",
        show_default=True,
    ),
]


# --------------------------------------------------------------------------- state file


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_state(state_dir: Path, info: StackInfo) -> None:
    """Atomically replace the state file (readers never see half a JSON document)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    data = info.to_dict()
    # Only the supervisor writes this file. Its create time lets readers tell it from an
    # unrelated process that later got the same PID (and never signal that one).
    data["supervisor_pid"] = os.getpid()
    data["extra"] = {
        **data.get("extra", {}),
        "supervisor_create_time": psutil.Process().create_time(),
    }
    write_text_atomic(state_path(state_dir), json.dumps(data, indent=2), per_process=True)


def read_state(state_dir: Path) -> StackInfo | None:
    path = state_path(state_dir)
    if not path.exists():
        return None
    try:
        return StackInfo.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        die(f"{path} is not a valid stack state file ({exc}); remove it")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def supervisor_alive(info: StackInfo) -> bool:
    """The recorded supervisor still runs (same PID *and* same process, not a recycled PID)."""
    if not pid_alive(info.supervisor_pid):
        return False
    recorded = info.extra.get("supervisor_create_time")
    try:
        actual = psutil.Process(info.supervisor_pid).create_time()
    except psutil.Error:
        return False
    return recorded is None or abs(actual - float(recorded)) < 1.0


def _remove_state_if_ours(state_dir: Path) -> None:
    path = state_path(state_dir)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("supervisor_pid") == os.getpid():
            path.unlink()


# --------------------------------------------------------------------------- validation


def build_config(
    workers: int, durability: str, prometheus: bool, proxy: bool, cpus: list[int] | None = None
) -> StackConfig:
    problem = durability_problem(durability)
    if problem:
        die(f"--durability: {problem}")
    if not 1 <= workers <= MAX_WORKERS:
        die(f"--workers: {workers} is out of range [1, {MAX_WORKERS}]")
    return StackConfig(
        workers=workers,
        durability=durability,  # type: ignore[arg-type]
        prometheus=prometheus,
        proxy=proxy,
        cpus=cpus,
    )


def stack_split(isolation: str | None, cpus: str | None) -> Isolation:
    """The stack's side of the CPU split (same flags and auto split as `flashlab run`)."""
    spec = isolation_overrides(isolation, cpus).get("isolation", {"mode": "auto"})
    try:
        return resolve(spec["mode"], spec.get("stack_cpus"), spec.get("load_cpus"))
    except IsolationError as exc:
        die(f"--isolation: {exc}")


def check_platform(name: str) -> None:
    if name not in PLATFORM_NAMES:
        die(f"--platform: {name!r} is not one of {', '.join(PLATFORM_NAMES)}")
    if name == "local":
        from flashlab.system.platforms.local import REQUIRED_BINARIES
        from flashlab.system.platforms.local import require_binary

        for binary in REQUIRED_BINARIES:
            try:
                require_binary(binary)
            except PlatformError as exc:  # StackStartError, with the install hint
                die(str(exc), EXIT_INFRA)


def make_platform(name: str, config: StackConfig) -> Platform:
    from flashlab.system.platforms import get_platform

    try:
        return get_platform(name, config)
    except ImportError as exc:
        die(f"--platform {name}: not available ({exc})", EXIT_INFRA)
    except ValueError as exc:
        die(f"--platform: {exc}")


def ensure_no_live_stack(state_dir: Path) -> None:
    info = read_state(state_dir)
    if info is not None and supervisor_alive(info):
        die(
            f"a stack is already running (supervisor PID {info.supervisor_pid}, {info.base_url}); "
            f"run `flashlab stack down` first"
        )


# --------------------------------------------------------------------------- output


def info_table(info: StackInfo, live: bool = False) -> Table:
    table = Table(title=f"flashlab stack ({info.platform})", title_justify="left")
    for column in ("component", "kind", "pid/container", "port", "running", "restarts"):
        table.add_column(column)
    for comp in info.components:
        running = pid_alive(comp.pid) if live and comp.pid else comp.running
        table.add_row(
            comp.name,
            comp.kind,
            str(comp.pid or comp.container or "-"),
            str(comp.port or "-"),
            "yes" if running else "[red]no[/]",
            str(comp.restarts),
        )
    return table


def print_info(info: StackInfo, as_json: bool, live: bool = False) -> None:
    if as_json:
        data = info.to_dict()
        if live:
            for comp in data["components"]:
                if comp.get("pid"):
                    comp["running"] = pid_alive(comp["pid"])
        emit_json(data)
        return
    console.print(f"base URL       {info.base_url}")
    console.print(f"Redis URL      {info.redis_url}")
    console.print(f"admin token    {info.admin_token}")
    if info.prometheus_url:
        console.print(f"prometheus     {info.prometheus_url}")
    if info.workdir:
        console.print(f"workdir        {info.workdir}")
    console.print(f"supervisor PID {info.supervisor_pid}")
    for note in info.extra.get("notes", []):
        console.print(f"note: {note}")
    console.print(info_table(info, live))


# --------------------------------------------------------------------------- supervisor


def supervise(
    platform_name: str, config: StackConfig, state_dir: Path, as_json: bool, banner: str
) -> None:
    """Start the platform, publish its state, block until SIGINT/SIGTERM/SIGHUP, then reap."""
    stop = threading.Event()
    started = False

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        if not started:
            # Abort a start in progress: platform.start() stops what it began on any exception.
            raise KeyboardInterrupt

    previous = {
        s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    platform = make_platform(platform_name, config)
    try:
        try:
            info = platform.start()
        except KeyboardInterrupt:
            return
        except PlatformConfigError as exc:
            die(str(exc), EXIT_BAD_INPUT)
        except Exception as exc:  # any platform (Docker SDK too): one line, never a traceback
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            die(message or type(exc).__name__, EXIT_INFRA)
        started = True
        write_state(state_dir, info)
        print_info(info, as_json)
        if banner and not as_json:
            console.print(banner)
        while not stop.wait(REFRESH_S):
            with contextlib.suppress(Exception):  # a status hiccup must not kill the supervisor
                write_state(state_dir, platform.status())
    finally:
        # A second Ctrl-C must not interrupt the reaping.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        platform.stop()
        _remove_state_if_ours(state_dir)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not as_json:
        console.print("stack stopped; every process it started was reaped")


def _serve_argv(platform_name: str, config: StackConfig, state_dir: Path) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "flashlab.commands.stack",
        "_serve",
        "--platform",
        platform_name,
        "--workers",
        str(config.workers),
        "--durability",
        config.durability,
        "--state-dir",
        str(state_dir),
        "--prometheus" if config.prometheus else "--no-prometheus",
    ]
    if config.proxy:
        argv.append("--proxy")
    if config.cpus:
        argv += ["--stack-cpus", ",".join(str(c) for c in config.cpus)]
    return argv


def run_detached(platform_name: str, config: StackConfig, state_dir: Path, as_json: bool) -> None:
    """Re-execute as a background supervisor; return once it has published stack.json."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / SUPERVISOR_LOG
    with open(log_path, "wb") as log:
        # Deliberately not flashlab.system.procs.spawn: this process must outlive us (no PDEATHSIG).
        child = subprocess.Popen(
            _serve_argv(platform_name, config, state_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=os.getcwd(),
        )
    deadline = time.monotonic() + DETACH_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_state(state_dir)
        if info is not None and info.supervisor_pid == child.pid:
            print_info(info, as_json)
            if not as_json:
                console.print("detached; stop it with `flashlab stack down`")
            return
        if child.poll() is not None:
            # The supervisor's own exit code already says bad input (2) or infrastructure (4).
            code = (
                child.returncode if child.returncode in (EXIT_BAD_INPUT, EXIT_INFRA) else EXIT_INFRA
            )
            die(f"stack supervisor exited ({child.returncode}): {_last_line(log_path)}", code)
        time.sleep(0.1)
    child.terminate()  # it reaps its own children on SIGTERM
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(DOWN_TIMEOUT_S)
    die(f"stack supervisor not ready after {DETACH_TIMEOUT_S:.0f}s; see {log_path}", EXIT_INFRA)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1].removeprefix("error: ").strip()
    return f"no output (see {path})"


def _component_pids(info: StackInfo) -> list[int]:
    return [c.pid for c in info.components if c.pid]


def _kill_leftover_groups(pids: list[int]) -> None:
    """SIGKILL the process groups of components that outlived their supervisor's shutdown.

    Called right after the supervisor exited, so these PIDs cannot have been recycled yet. Each
    component led its own session, so its PGID is its PID: this also reaches nginx's workers."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- commands

_UP_EPILOG = (
    "Examples:\n\n"
    "  flashlab stack up                          # foreground; Ctrl-C stops and reaps it\n\n"
    "  flashlab stack up --detach --workers 4     # background supervisor, then return\n\n"
    "  flashlab stack up --durability aof-always --proxy --json\n\n"
    "  flashlab stack up --platform compose --detach\n\n"
    "  flashlab stack up --detach --cpus 0:1      # stack on CPU 0; run the load with --cpus 0:1"
)


@app.command(epilog=_UP_EPILOG)
def up(
    platform: Annotated[str, typer.Option(help="local | compose")] = "local",
    workers: Annotated[int, typer.Option(help="API worker processes.")] = 2,
    durability: Annotated[
        str, typer.Option(help="none | rdb | aof-everysec | aof-always")
    ] = "none",
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stack info as JSON.")] = False,
    prometheus: Annotated[bool, typer.Option(help="Start prometheus if installed.")] = True,
    proxy: Annotated[
        bool, typer.Option("--proxy", help="Put the TCP fault proxy before Redis.")
    ] = False,
    state_dir: StateDirOpt = Path(DEFAULT_STATE_DIR),
    isolation: IsolationOpt = None,
    cpus: CpusOpt = None,
) -> None:
    """Start a stack and print how to reach it (base URL, Redis URL, admin token, PIDs).

    By default the stack is pinned to its side of the CPU split (`--isolation auto`: CPU 0 on
    2 cores); a `flashlab run --target ...` with the same flags pins the load to the other side."""
    split = stack_split(isolation, cpus)
    config = build_config(workers, durability, prometheus, proxy, split.stack)
    check_platform(platform)
    ensure_no_live_stack(state_dir)
    if not as_json:
        console.print(split.describe())
    if detach:
        run_detached(platform, config, state_dir, as_json)
    else:
        supervise(platform, config, state_dir, as_json, "running; press Ctrl-C to stop")


@app.command("_serve", hidden=True)
def serve(
    platform: Annotated[str, typer.Option()] = "local",
    workers: Annotated[int, typer.Option()] = 2,
    durability: Annotated[str, typer.Option()] = "none",
    prometheus: Annotated[bool, typer.Option()] = True,
    proxy: Annotated[bool, typer.Option("--proxy")] = False,
    state_dir: StateDirOpt = Path(DEFAULT_STATE_DIR),
    stack_cpus: Annotated[str | None, typer.Option("--stack-cpus")] = None,
) -> None:
    """The detached supervisor (started by `up --detach`)."""
    pinned_to = [int(c) for c in stack_cpus.split(",")] if stack_cpus else None
    config = build_config(workers, durability, prometheus, proxy, pinned_to)
    check_platform(platform)
    supervise(platform, config, state_dir, as_json=False, banner="")


@app.command(
    epilog="Examples:\n\n  flashlab stack status\n\n  flashlab stack status --json | jq .base_url"
)
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    state_dir: StateDirOpt = Path(DEFAULT_STATE_DIR),
) -> None:
    """Show the running stack (from stack.json) with a live check of every PID."""
    info = read_state(state_dir)
    if info is None:
        die(
            f"no stack running (no {state_path(state_dir)}); start one with `flashlab stack up --detach`"
        )
    if not supervisor_alive(info):
        die(
            f"stale {state_path(state_dir)}: supervisor PID {info.supervisor_pid} is gone; "
            f"run `flashlab stack down` to clean up",
            EXIT_INFRA,
        )
    print_info(info, as_json, live=True)


@app.command(
    epilog="Examples:\n\n  flashlab stack down\n\n  FLASHLAB_STATE_DIR=/tmp/s flashlab stack down"
)
def down(state_dir: StateDirOpt = Path(DEFAULT_STATE_DIR)) -> None:
    """Stop the detached stack: SIGTERM its supervisor, wait until it and its children are gone."""
    info = read_state(state_dir)
    if info is None:
        die(f"no stack running (no {state_path(state_dir)})")
    path = state_path(state_dir)
    pids = _component_pids(info)
    if not supervisor_alive(info):
        # Its children got PDEATHSIG when it died; the recorded PIDs may since belong to
        # someone else, so nothing is signalled here.
        path.unlink(missing_ok=True)
        console.print(
            f"supervisor PID {info.supervisor_pid} was already gone; removed stale {path}"
        )
        return
    supervisor = psutil.Process(info.supervisor_pid)
    supervisor.terminate()
    try:
        supervisor.wait(DOWN_TIMEOUT_S)
    except psutil.TimeoutExpired:
        die(
            f"supervisor PID {info.supervisor_pid} did not stop within {DOWN_TIMEOUT_S:.0f}s",
            EXIT_INFRA,
        )
    left = [pid for pid in pids if pid_alive(pid)]
    if left:
        _kill_leftover_groups(left)
        die(f"supervisor stopped but PIDs {left} were still alive; killed them", EXIT_INFRA)
    path.unlink(missing_ok=True)
    console.print(f"stack stopped (supervisor PID {info.supervisor_pid}, {len(pids)} processes)")


if __name__ == "__main__":
    app()
