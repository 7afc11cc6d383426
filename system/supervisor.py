"""A process supervisor: named slots (how to start a process, when it is ready), respawning, stopping.

The local platform (the lab's own stack) and a target's processes (a backend described by a
target file) both supervise their children with it. Every child goes through
`flashlab.system.procs.spawn` (its own session, dies with the supervisor, reaped by PID, never by
name); a slot marked `respawn` is brought back when it dies, with exponential backoff when it
keeps dying at start (a bad env, a broken import), like the reference's Node cluster or pm2.
"""

from __future__ import annotations

import signal as _signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

import httpx

from flashlab.core.platform import Component
from flashlab.core.platform import ComponentNotRunning
from flashlab.core.platform import Platform
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import StackInfo
from flashlab.core.platform import StackStartError
from flashlab.system import procs

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0  # per component; uvicorn imports take ~1-2 s each on 2 busy cores
STOP_GRACE_S = 5.0
RESPAWN_BACKOFF_MAX_S = 5.0
QUICK_DEATH_S = 2.0  # a process dying this soon after its start counts towards backoff
MONITOR_INTERVAL_S = 0.1


def wait_until(
    check: Callable[[], bool], what: str, timeout: float, alive: Callable[[], bool]
) -> None:
    """Poll `check` until true; fail fast if the process died, or after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise StackStartError(f"{what}: process exited during startup")
        time.sleep(0.05)
    raise StackStartError(f"{what}: not ready after {timeout:.0f}s")


def http_ok(url: str) -> bool:
    """GET `url` answers 2xx within a second."""
    try:
        return 200 <= httpx.get(url, timeout=1.0).status_code < 300
    except httpx.HTTPError:
        return False


def tcp_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Slot:
    """One named component: how to (re)start it and its current process."""

    name: str
    kind: str
    port: int | None
    start: Callable[[], procs.Tracked]
    ready: Callable[[], bool]
    tracked: procs.Tracked | None = None
    restarts: int = 0
    respawn: bool = False  # the monitor brings it back when it dies
    history: list[int] = field(default_factory=list)  # every PID this slot has had
    logs: list[Path] = field(default_factory=list)  # where its errors land (for messages)
    ready_timeout_s: float = START_TIMEOUT_S
    quick_deaths: int = 0  # consecutive deaths soon after a start (respawn backoff)
    next_respawn: float = 0.0  # monotonic time before which the monitor waits

    @property
    def pid(self) -> int | None:
        return self.tracked.pid if self.tracked else None

    def running(self) -> bool:
        return self.tracked is not None and procs.is_alive(self.tracked.pid)


class Supervisor:
    """The slots of one stack, in start order; a monitor thread respawns the `respawn` ones.

    `on_death(slot)` runs (under the lock) the first time the monitor sees a respawning slot's
    process dead, before any respawn: the local platform clears the dead worker's metrics there."""

    def __init__(self, on_death: Callable[[Slot], None] | None = None) -> None:
        self.slots: dict[str, Slot] = {}
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._on_death = on_death

    def add(self, slot: Slot) -> Slot:
        self.slots[slot.name] = slot
        return slot

    def slot(self, name: str) -> Slot:
        try:
            return self.slots[name]
        except KeyError:
            raise PlatformConfigError(
                f"unknown component {name!r} (have: {', '.join(self.slots) or 'none'})"
            ) from None

    # -- starting

    def launch(self, slot: Slot) -> None:
        slot.tracked = slot.start()
        slot.history.append(slot.tracked.pid)

    def await_ready(self, slot: Slot) -> None:
        tracked = slot.tracked
        assert tracked is not None
        where = f" (port {slot.port})" if slot.port is not None else ""
        try:
            wait_until(
                slot.ready,
                f"{slot.name}{where}",
                slot.ready_timeout_s,
                lambda: tracked.popen.poll() is None,
            )
        except StackStartError as exc:
            tails = [(path, procs.tail(path, 3)) for path in slot.logs]
            path, text = next(((p, t) for p, t in tails if t), (slot.logs[0], "(empty)"))
            raise StackStartError(f"{exc}; log {path}: {text}") from None

    def start_all(self) -> None:
        """Launch every slot at once, then await each in order (independent boots overlap)."""
        self._stopping.clear()
        for slot in self.slots.values():
            self.launch(slot)
        for slot in list(self.slots.values()):
            self.await_ready(slot)

    def start_in_order(self) -> None:
        """Launch and await one slot after the other (each may need the ones before it)."""
        self._stopping.clear()
        for slot in list(self.slots.values()):
            self.launch(slot)
            self.await_ready(slot)

    def watch(self) -> None:
        """Start the monitor thread that respawns the `respawn` slots."""
        self._monitor = threading.Thread(target=self._watch, name="flashlab-monitor", daemon=True)
        self._monitor.start()

    # -- acting on one component

    def components(self) -> list[Component]:
        with self.lock:
            return [
                Component(
                    name=s.name,
                    kind=s.kind,
                    pid=s.pid,
                    port=s.port,
                    restarts=s.restarts,
                    running=s.running(),
                )
                for s in self.slots.values()
            ]

    def signal(self, component: str, sig: int) -> None:
        slot = self.slot(component)
        if slot.tracked is None:
            raise ComponentNotRunning(f"component {component!r} has no process")
        # SIGKILL means "the component dies": take its whole process group (nginx workers,
        # redis' BGSAVE fork, postgres' backends) so nothing keeps the port. Other signals go
        # to the main process only (SIGHUP is nginx's reload; SIGSTOP/SIGCONT pause redis).
        procs.send(slot.tracked.pid, sig, group=sig == _signal.SIGKILL)

    def start_component(self, component: str) -> Component:
        slot = self.slot(component)
        with self.lock:
            if not slot.running():
                if slot.tracked is not None:
                    procs.wait(slot.tracked.pid, 1.0)
                    slot.restarts += 1
                self.launch(slot)
        self.await_ready(slot)
        return next(c for c in self.components() if c.name == component)

    # -- stopping

    def stop(self) -> None:
        """Stop respawning, terminate children newest-first (and any earlier incarnation), reap."""
        self._stopping.set()
        with self.lock:
            slots = list(self.slots.values())
        for slot in reversed(slots):
            if slot.tracked is not None and slot.tracked.popen.poll() is None:
                procs.terminate(slot.tracked.pid, STOP_GRACE_S)
            for pid in slot.history:  # any earlier incarnation still around (should be none)
                if procs.is_alive(pid):
                    procs.terminate(pid, STOP_GRACE_S)
        # The monitor saw _stopping under the lock, so it respawns nothing from here on.
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=5.0)
        self._monitor = None

    # -- the monitor

    def _watch(self) -> None:
        while not self._stopping.wait(MONITOR_INTERVAL_S):
            with self.lock:
                if self._stopping.is_set():
                    return
                for slot in self.slots.values():
                    if slot.respawn and slot.tracked is not None:
                        self._maybe_respawn(slot)

    def _maybe_respawn(self, slot: Slot) -> None:
        assert slot.tracked is not None
        if slot.tracked.popen.poll() is None:
            return
        now = time.monotonic()
        if slot.next_respawn == 0.0:
            # First sight of this death; a process that keeps dying at startup is respawned
            # with exponential backoff instead of 10 times a second.
            if self._on_death is not None:
                self._on_death(slot)
            lived = time.time() - slot.tracked.started_at
            slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
            delay = (
                min(RESPAWN_BACKOFF_MAX_S, 0.1 * 2**slot.quick_deaths)
                if slot.quick_deaths > 1
                else 0.0
            )
            slot.next_respawn = now + delay
        if now < slot.next_respawn:
            return
        slot.next_respawn = 0.0
        slot.restarts += 1
        self.launch(slot)


class SupervisedPlatform(Platform):
    """A platform whose components are this process's children, kept by one Supervisor (the
    local platform, a target's processes): what it knows of them is what the supervisor knows."""

    _sup: Supervisor
    _info: StackInfo | None = None

    def status(self) -> StackInfo:
        if self._info is None:
            raise ComponentNotRunning("stack not started")
        return replace(self._info, components=self.components())

    def components(self) -> list[Component]:
        return self._sup.components()

    def signal(self, component: str, sig: int = _signal.SIGTERM) -> None:
        self._sup.signal(component, sig)

    def start_component(self, component: str) -> Component:
        return self._sup.start_component(component)
