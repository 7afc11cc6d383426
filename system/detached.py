"""A stack that outlives its command: the state file, PID liveness, the detached re-exec, stopping.

`flashlab stack up` runs one supervisor process that owns the platform: in the foreground that
is the CLI process itself (`supervise`: Ctrl-C stops and reaps everything); with `--detach` it
is a re-execution of the CLI's hidden `_serve` command in its own session (`start_detached`).
The supervisor publishes the stack in a state file (`stack.json`) that `status` reads and
`stop_detached` (`flashlab stack down`) uses to SIGTERM it. The command line itself lives in
flashlab.commands.stack; this module prints nothing and raises UserError (bad input, exit 2)
or InfraError (exit 4) for the CLI to print as one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import FlashlabError
from flashlab.core.errors import InfraError
from flashlab.core.errors import UserError
from flashlab.core.platform import Platform
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import StackInfo
from flashlab.core.rundir import write_text_atomic

STATE_FILE = "stack.json"
SUPERVISOR_LOG = "supervisor.log"
DETACH_TIMEOUT_S = 180.0  # compose may build images on first use
DOWN_TIMEOUT_S = 60.0
REFRESH_S = 1.0  # how often a supervisor rewrites the state file (respawned worker PIDs)


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
    """The published stack, None when there is no state file (UserError when it is garbled)."""
    path = state_path(state_dir)
    if not path.exists():
        return None
    try:
        return StackInfo.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path} is not a valid stack state file ({exc}); remove it") from None


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


# --------------------------------------------------------------------------- the supervisor


def _start_error(exc: Exception) -> FlashlabError:
    """A platform that did not start, as one line: bad input (2) or infrastructure (4)."""
    if isinstance(exc, PlatformConfigError):
        return UserError(str(exc))
    # Any platform (Docker SDK too): one line, never a traceback.
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return InfraError(message or type(exc).__name__)


def supervise(platform: Platform, state_dir: Path, on_ready: Callable[[StackInfo], None]) -> bool:
    """Start the platform, publish its state, block until SIGINT/SIGTERM/SIGHUP, then reap.

    `on_ready` hears the stack once it serves. False when a signal aborted the start."""
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
    try:
        try:
            info = platform.start()
        except KeyboardInterrupt:
            return False
        except Exception as exc:
            raise _start_error(exc) from None
        started = True
        write_state(state_dir, info)
        on_ready(info)
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
    return True


# --------------------------------------------------------------------------- detached


def start_detached(argv: list[str], state_dir: Path) -> StackInfo:
    """Run `argv` (a supervisor) in the background; return its stack once it published it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / SUPERVISOR_LOG
    with open(log_path, "wb") as log:
        # Deliberately not flashlab.system.procs.spawn: this process must outlive us (no PDEATHSIG).
        child = subprocess.Popen(
            argv,
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
            return info
        if child.poll() is not None:
            # The supervisor's own exit code already says bad input (2) or infrastructure (4).
            kind = UserError if child.returncode == EXIT_BAD_INPUT else InfraError
            raise kind(f"stack supervisor exited ({child.returncode}): {_last_line(log_path)}")
        time.sleep(0.1)
    child.terminate()  # it reaps its own children on SIGTERM
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(DOWN_TIMEOUT_S)
    raise InfraError(f"stack supervisor not ready after {DETACH_TIMEOUT_S:.0f}s; see {log_path}")


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1].removeprefix("error: ").strip()
    return f"no output (see {path})"


def stop_detached(info: StackInfo, state_dir: Path) -> str:
    """SIGTERM the supervisor, wait until it and its children are gone; what to tell the user."""
    path = state_path(state_dir)
    pids = [c.pid for c in info.components if c.pid]
    if not supervisor_alive(info):
        # Its children got PDEATHSIG when it died; the recorded PIDs may since belong to
        # someone else, so nothing is signalled here.
        path.unlink(missing_ok=True)
        return f"supervisor PID {info.supervisor_pid} was already gone; removed stale {path}"
    supervisor = psutil.Process(info.supervisor_pid)
    supervisor.terminate()
    try:
        supervisor.wait(DOWN_TIMEOUT_S)
    except psutil.TimeoutExpired:
        raise InfraError(
            f"supervisor PID {info.supervisor_pid} did not stop within {DOWN_TIMEOUT_S:.0f}s"
        ) from None
    left = [pid for pid in pids if pid_alive(pid)]
    if left:
        _kill_leftover_groups(left)
        raise InfraError(f"supervisor stopped but PIDs {left} were still alive; killed them")
    path.unlink(missing_ok=True)
    return f"stack stopped (supervisor PID {info.supervisor_pid}, {len(pids)} processes)"


def _kill_leftover_groups(pids: list[int]) -> None:
    """SIGKILL the process groups of components that outlived their supervisor's shutdown.

    Called right after the supervisor exited, so these PIDs cannot have been recycled yet. Each
    component led its own session, so its PGID is its PID: this also reaches nginx's workers."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
