"""Process tracking: spawn children that die with us, remember every PID, terminate and reap them.

Every process the lab starts goes through `spawn`, so the registry (`started_pids`) is the
complete list for this Python process - the test session asserts all of them are gone at the
end. Only PIDs from this registry are ever signalled; nothing here scans the process table
by name (other people's stacks run on the same machine).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import TypeVar

import psutil

from flashlab.core.isolation import pin_self

T = TypeVar("T")
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Tracked:
    """One started process: its Popen, what it is, and where its output goes."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path | None
    started_at: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid


_lock = threading.Lock()
_registry: dict[int, Tracked] = {}


def _raise_nofile() -> None:
    # Children (nginx, redis, uvicorn) serve thousands of sockets: lift the soft fd limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _child_setup(parent_pid: int, pdeathsig: int | None, cpus: Collection[int] | None) -> None:
    """Runs in the child between fork and exec (keep it async-signal-simple)."""
    if pdeathsig:
        # If the supervisor is SIGKILLed, the kernel signals this child too: no orphans.
        _libc.prctl(PR_SET_PDEATHSIG, int(pdeathsig), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), int(pdeathsig))
    _raise_nofile()
    # Before exec, so everything the child forks later (nginx's workers, redis' BGSAVE) inherits it.
    pin_self(cpus)


class _Spawner:
    """One long-lived daemon thread that forks every child.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. A
    child started from a short-lived thread (a fault scheduler restarting Redis, a thread pool)
    would be killed as soon as that thread ended; forking only from this thread, which lives as
    long as the process, makes "dies with the supervisor" mean exactly that."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T]) -> T:
        thread = self._ensure_thread()
        if threading.current_thread() is thread:
            return fn()
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future.result()

    def _ensure_thread(self) -> threading.Thread:
        with self._lock:
            # After a fork the thread object is inherited but the thread is not: start anew.
            if (
                self._thread is None
                or self._owner_pid != os.getpid()
                or not self._thread.is_alive()
            ):
                self._queue = queue.SimpleQueue()
                self._owner_pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="flashlab-spawner", daemon=True
                )
                self._thread.start()
            return self._thread

    def _run(self) -> None:
        while True:
            fn, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, never lost
                future.set_exception(exc)


_spawner = _Spawner()


def spawn(
    argv: Sequence[str],
    *,
    name: str,
    env: Mapping[str, str] | None = None,
    log_path: str | Path | None = None,
    cwd: str | Path | None = None,
    pdeathsig: int | None = signal.SIGKILL,
    cpus: Collection[int] | None = None,
) -> Tracked:
    """Start `argv` in its own session (Ctrl-C in the terminal reaches only the supervisor),
    with stdout+stderr appended to `log_path` (or discarded), and register its PID.

    `pdeathsig` is what the kernel sends the child when the spawning thread dies; use SIGTERM
    for a process that must clean up its own children (nginx's master stops its workers on
    SIGTERM, while a SIGKILLed master leaves them orphaned and still listening).

    `cpus` pins the child (and all it forks) to those CPUs (flashlab.core.isolation); None
    leaves it on the spawner's own affinity."""
    return _spawner.call(lambda: _spawn_here(list(argv), name, env, log_path, cwd, pdeathsig, cpus))


def _spawn_here(
    argv: list[str],
    name: str,
    env: Mapping[str, str] | None,
    log_path: str | Path | None,
    cwd: str | Path | None,
    pdeathsig: int | None,
    cpus: Collection[int] | None = None,
) -> Tracked:
    parent = os.getpid()
    log = Path(log_path) if log_path else None
    # The child gets its own copy of the fd; closing ours right after Popen is safe.
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            preexec_fn=lambda: _child_setup(parent, pdeathsig, cpus),
        )
    finally:
        if not isinstance(out, int):  # the log file, not DEVNULL
            out.close()
    tracked = Tracked(name=name, argv=list(argv), popen=popen, log_path=log)
    with _lock:
        _registry[popen.pid] = tracked
    return tracked


def started_pids() -> list[int]:
    """Every PID spawned by this Python process (alive or not), oldest first."""
    with _lock:
        return list(_registry)


def get(pid: int) -> Tracked | None:
    with _lock:
        return _registry.get(pid)


def is_alive(pid: int) -> bool:
    """True when `pid` runs and is not a zombie. Our own children are reaped first (poll)."""
    tracked = get(pid)
    if tracked is not None and tracked.popen.poll() is not None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def alive_pids() -> list[int]:
    """Registered PIDs that are still running (the test-session leak check)."""
    return [pid for pid in started_pids() if is_alive(pid)]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def wait(pid: int, timeout: float) -> bool:
    """Wait (reaping) until our child `pid` exits; True if it did within `timeout`."""
    tracked = get(pid)
    if tracked is None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return True
            time.sleep(0.02)
        return not is_alive(pid)
    try:
        tracked.popen.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def send(pid: int, sig: int, *, group: bool = False) -> bool:
    """Signal one registered process (or its whole process group); False when already gone."""
    if get(pid) is None:
        raise ValueError(f"PID {pid} was not started by this process; refusing to signal it")
    if not is_alive(pid):
        return False
    try:
        if group:
            # spawn() puts each child in its own session, so its PGID is its PID: this reaches the
            # child and its own children (nginx workers, redis' fork for BGSAVE) and nothing else.
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def terminate(pid: int, grace: float = 5.0) -> int | None:
    """SIGTERM `pid`, SIGKILL it (and any of its descendants left) after `grace`; reap it.

    Returns the exit code (None if it was not our child)."""
    tracked = get(pid)
    if tracked is None:
        raise ValueError(f"PID {pid} was not started by this process; refusing to terminate it")
    children = _descendants(pid)  # snapshot: nginx workers must not outlive their master
    if tracked.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            # A SIGSTOPped child (the redis-pause fault) only acts on SIGTERM once continued.
            os.kill(pid, signal.SIGCONT)
        if not wait(pid, grace):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait(pid, grace)
    for child in children:
        # psutil.Process remembers the create time, so a recycled PID is never hit.
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.kill()
    with contextlib.suppress(psutil.Error):
        psutil.wait_procs(children, timeout=grace)
    return tracked.popen.poll()


def terminate_all(grace: float = 5.0) -> None:
    """Terminate every registered process still running, newest first."""
    for pid in reversed(started_pids()):
        if is_alive(pid):
            terminate(pid, grace)


def tail(path: Path | None, lines: int = 5) -> str:
    """The last lines of a log, for error messages."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])


def run_once(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    timeout_s: float,
    where: str,
    error: type[Exception],
    log_path: Path | None = None,
) -> None:
    """A one-shot command (a setup step, a reset command), waited for here: not supervised, it
    ends by itself. `error` (one line naming `where`) when it is not found, runs longer than
    `timeout_s` or exits non-zero; its output goes to `log_path` (its last line is in the error)."""
    try:
        if log_path is not None:
            with open(log_path, "ab") as out:
                done = subprocess.run(
                    list(argv), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s
                )
            last = tail(log_path, 1)
        else:
            done = subprocess.run(list(argv), cwd=cwd, capture_output=True, timeout=timeout_s)
            lines = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
            last = lines[-1] if lines else ""
    except FileNotFoundError:
        raise error(f"{where}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise error(f"{where}: still running after {timeout_s:.0f}s") from None
    if done.returncode != 0:
        raise error(f"{where} exited {done.returncode}: {last}")
