"""API worker faults: SIGKILL one, several or all uvicorn workers; the platform's supervisor respawns them."""

from __future__ import annotations

import signal
import time
from functools import partial
from typing import Any
from typing import Literal

import httpx
from pydantic import Field
from pydantic import field_validator

from flashlab.chaos.faults.fault import RESPAWN_TIMEOUT_S
from flashlab.chaos.faults.fault import Fault
from flashlab.chaos.faults.fault import FaultContext
from flashlab.chaos.faults.fault import FaultError
from flashlab.chaos.faults.fault import FaultParams
from flashlab.chaos.faults.fault import elapsed_ms
from flashlab.chaos.faults.fault import wait_for
from flashlab.core.platform import Component


class WorkerKillParams(FaultParams):
    count: int | Literal["all"] = Field(
        default=1, description="how many API workers to SIGKILL (an int >= 1, or 'all')"
    )

    @field_validator("count")
    @classmethod
    def _positive(cls, count: int | str) -> int | str:
        if isinstance(count, int) and count < 1:
            raise ValueError("count must be >= 1 or 'all'")
        return count


class WorkerKill(Fault):
    """SIGKILL `count` API workers (or all); the supervisor respawns them. Repeats rotate through
    the workers. Requests in flight on a killed worker are lost (nginx answers 502)."""

    name = "worker-kill"
    Params = WorkerKillParams
    params: WorkerKillParams  # what Params validated (Fault.__init__)
    role = "worker"

    def _victims(self, ctx: FaultContext) -> list[Component]:
        workers = sorted(ctx.components("api"), key=lambda c: _worker_index(c.name))
        if not workers:
            raise FaultError("stack has no api workers")
        count = self.params.count
        n = len(workers) if count == "all" else min(count, len(workers))
        # Rotate by occurrence index so a repeated kill does not always hit api-0.
        return [workers[(self.index + k) % len(workers)] for k in range(n)]

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        platform = ctx.require_platform()
        victims = self._victims(ctx)
        self.target = ",".join(c.name for c in victims)
        self._before = {c.name: (c.pid, c.restarts) for c in victims}
        for comp in victims:
            platform.signal(comp.name, signal.SIGKILL)
        return {
            "killed": {c.name: c.pid for c in victims},
            "restarts_before": {c.name: c.restarts for c in victims},
        }

    def recover(self, ctx: FaultContext) -> dict[str, Any]:
        before: dict[str, tuple[int | None, int]] = getattr(self, "_before", {})
        if not before:
            return {}
        start = time.monotonic()
        if ctx.info.platform == "target":
            # A target's worker is respawned by its platform when its file says `restart`, and
            # started here when not; either way start_component returns once its `ready` check
            # passes (it starts nothing that already runs).
            platform = ctx.require_platform()
            wait_for(lambda: _gone(ctx, before), RESPAWN_TIMEOUT_S, "killed workers to be gone")
            fresh = [platform.start_component(name) for name in before]
        else:
            fresh = wait_for(
                lambda: _respawned(ctx, before), RESPAWN_TIMEOUT_S, "api workers to be respawned"
            )
        for comp in fresh:
            if comp.port is not None and ctx.info.platform == "local":
                # A new PID is not yet a serving worker: wait for its own /healthz.
                url = f"http://127.0.0.1:{comp.port}/healthz"
                wait_for(partial(_healthy, url), RESPAWN_TIMEOUT_S, f"{comp.name} healthy")
        return {
            "respawned": {c.name: c.pid for c in fresh},
            "restarts_after": {c.name: c.restarts for c in fresh},
            "respawn_ms": elapsed_ms(start),
        }


def _worker_index(name: str) -> int:
    suffix = name.rpartition("-")[2]
    return int(suffix) if suffix.isdigit() else 0


def _respawned(ctx: FaultContext, before: dict[str, tuple[int | None, int]]) -> list[Component]:
    """The victims, once every one of them runs again as a new process; [] until then."""
    current = {c.name: c for c in ctx.components("api")}
    fresh = []
    for name, (pid, restarts) in before.items():
        comp = current.get(name)
        if comp is None or not comp.running:
            return []
        if comp.restarts <= restarts and (pid is None or comp.pid == pid):
            return []
        fresh.append(comp)
    return fresh


def _gone(ctx: FaultContext, before: dict[str, tuple[int | None, int]]) -> bool:
    """Every killed process is dead (or already replaced): a SIGKILLed one runs on for a moment,
    and starting a component that still looks alive would start nothing."""
    current = {c.name: c for c in ctx.components("api")}
    return all(
        name not in current or not current[name].running or current[name].pid != pid
        for name, (pid, _restarts) in before.items()
    )


def _healthy(url: str) -> bool:
    return httpx.get(url, timeout=1.0).status_code == 200
