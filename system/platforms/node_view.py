"""A running local stack as seen from another process on the same node: by PID and listening port.

The nemesis (flashlab.lab.nemesis) runs the fault scheduler in a Ray actor on the node that runs
the stack, not in the process that started it. This view gives faults what they act through
(`components`, `signal`, `paused`) without owning the processes: a component is the PID the
owner reported, and an API worker the owner respawned is found again as the new process that
listens on its port (its restart counted here). It starts and stops nothing: `start_component`
needs the owner (the restart faults are refused up front for the nemesis, see
`flashlab.lab.nemesis.check_faults`).

A PID is signalled only while it is still the process first seen under it (same create time),
so a recycled PID is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal as _signal
from dataclasses import replace

import psutil

from flashlab.core.platform import Component
from flashlab.core.platform import ComponentNotRunning
from flashlab.core.platform import Platform
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo

RESPAWNED_KINDS = ("api",)  # the owner's supervisor brings these back on the same port


class NodeView(Platform):
    """Components of a stack another process owns on this node; signals by verified PID."""

    name = "node-view"

    def __init__(self, info: StackInfo) -> None:
        super().__init__(StackConfig(workers=max(1, len(info.components))))
        self.info = info
        self._comps = {c.name: replace(c) for c in info.components}
        self._born: dict[int, float] = {}  # pid -> create_time when first seen
        for comp in self._comps.values():
            if comp.pid is not None:
                self._remember(comp.pid)

    def _remember(self, pid: int) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self._born.setdefault(pid, psutil.Process(pid).create_time())

    def _same_process(self, pid: int | None) -> bool:
        """Alive, not a zombie, and the very process first seen under this PID."""
        if pid is None or pid not in self._born:
            return False
        try:
            proc = psutil.Process(pid)
            return proc.create_time() == self._born[pid] and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    # --- the owner's job, not ours ------------------------------------------------------------

    def start(self) -> StackInfo:
        return self.status()

    def stop(self) -> None:
        """Nothing to stop: the process that started the stack stops it."""

    def start_component(self, component: str) -> Component:
        raise ComponentNotRunning(
            f"{component}: restarting a component needs the process that owns the stack"
        )

    # --- what faults act through --------------------------------------------------------------

    def status(self) -> StackInfo:
        return replace(self.info, components=self.components())

    def components(self) -> list[Component]:
        listeners = _listeners()
        for comp in self._comps.values():
            if comp.kind in RESPAWNED_KINDS and comp.port is not None:
                pid = listeners.get(comp.port)
                if pid is not None and pid != comp.pid:
                    self._remember(pid)
                    if comp.pid is not None:
                        comp.restarts += 1
                    comp.pid = pid
            comp.running = self._same_process(comp.pid)
        return [replace(c) for c in self._comps.values()]

    def signal(self, component: str, sig: int = _signal.SIGTERM) -> None:
        comp = self._comps.get(component)
        if comp is None:
            have = ", ".join(self._comps) or "none"
            raise PlatformConfigError(f"stack has no component {component!r} (have: {have})")
        self.components()  # refresh: a respawned worker has a new PID
        if not self._same_process(comp.pid):
            raise ComponentNotRunning(f"component {component!r} has no process")
        assert comp.pid is not None
        # As the local platform: SIGKILL takes the component's process group (each component
        # leads its own session there), any other signal only the main process.
        if sig == _signal.SIGKILL and os.getpgid(comp.pid) == comp.pid:
            os.killpg(comp.pid, sig)
        else:
            os.kill(comp.pid, sig)


def _listeners() -> dict[int, int]:
    """Listening TCP port -> PID of the lowest-PID process holding it (nginx: the master)."""
    found: dict[int, int] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid is not None and conn.laddr:
            port = conn.laddr.port
            found[port] = min(found.get(port, conn.pid), conn.pid)
    return found
