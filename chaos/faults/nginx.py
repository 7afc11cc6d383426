"""nginx faults: configuration reload (SIGHUP, workers replaced) and crash (SIGKILL, restarted after duration)."""

from __future__ import annotations

import signal
import time
from typing import Any

import psutil

from flashlab.chaos.faults.fault import STOP_TIMEOUT_S
from flashlab.chaos.faults.fault import Fault
from flashlab.chaos.faults.fault import FaultContext
from flashlab.chaos.faults.fault import StopStartFault
from flashlab.chaos.faults.fault import elapsed_ms
from flashlab.chaos.faults.fault import wait_for

NGINX = "nginx"  # the component kind (a target's process with role gateway)


def _worker_pids(master: int | None) -> list[int]:
    """nginx worker PIDs under the master (local platform only; [] when unknown)."""
    if master is None:
        return []
    try:
        return sorted(p.pid for p in psutil.Process(master).children())
    except psutil.Error:
        return []


class NginxReload(Fault):
    """nginx reload (SIGHUP): the master re-reads its config and replaces its worker processes
    gracefully; no request should fail."""

    name = "nginx-reload"
    role = "gateway"

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        platform, comp = self.aim(ctx, NGINX)
        master = comp.pid
        before = _worker_pids(master)
        start = time.monotonic()
        platform.signal(comp.name, signal.SIGHUP)
        observed: dict[str, Any] = {"master_pid": master, "workers_before": before}
        if before:
            # A reload starts new workers; the old ones drain and exit. Wait for a fresh set.
            after = wait_for(
                lambda: _fresh_workers(master, before), STOP_TIMEOUT_S, "nginx workers replaced"
            )
            observed.update(workers_after=after, reload_ms=elapsed_ms(start))
        return observed

    def recover(self, ctx: FaultContext) -> dict[str, Any]:
        comp = ctx.component_of(NGINX) if ctx.platform is not None else None
        return {"master_pid": comp.pid if comp else None, "running": bool(comp and comp.running)}


def _fresh_workers(master: int | None, before: list[int]) -> list[int] | None:
    now = _worker_pids(master)
    return now if now and not set(now) & set(before) else None


class NginxKill(StopStartFault):
    """nginx crash: SIGKILL to master and workers; clients get connection refused until it is
    started again after duration_s."""

    name = "nginx-kill"
    role = "gateway"
    component = NGINX
    sig = signal.SIGKILL
    stop_what = "nginx to stop"
