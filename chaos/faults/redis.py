"""Redis faults: graceful restart (SIGTERM), crash (SIGKILL) and pause (SIGSTOP/SIGCONT).

Evidence of a restart comes from Redis itself: `INFO server` run_id changes and uptime resets,
read over the truth channel (StackInfo.redis_url), besides the PID the platform reports.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from flashlab.chaos.faults.fault import RESPAWN_TIMEOUT_S
from flashlab.chaos.faults.fault import STOP_TIMEOUT_S
from flashlab.chaos.faults.fault import Fault
from flashlab.chaos.faults.fault import FaultContext
from flashlab.chaos.faults.fault import StopStartFault
from flashlab.chaos.faults.fault import elapsed_ms
from flashlab.chaos.faults.fault import host_port
from flashlab.chaos.faults.fault import tcp_ping
from flashlab.chaos.faults.fault import wait_for

REDIS = "redis"  # the component kind (a target's process with role redis)


def _info_or_error(ctx: FaultContext) -> dict[str, Any]:
    try:
        return ctx.redis_server_info()
    except Exception as exc:  # Redis may already be down: that is evidence, not a failure
        return {"error": f"{type(exc).__name__}: {exc}"}


class _RedisStop(StopStartFault):
    """Stop Redis with a signal; start it again (start_component) after the fault's duration.

    The stop waits until Redis is really gone, so recovery starts a fresh process (a graceful
    shutdown may still be writing its RDB/AOF for a moment). INFO run_id/uptime before and after
    prove the restart.
    """

    component = REDIS
    role = "redis"
    stop_what = "redis to stop after signal"

    def _before_stop(self, ctx: FaultContext) -> dict[str, Any]:
        before = _info_or_error(ctx)
        return {
            "signal": signal.Signals(self.sig).name,
            "run_id_before": before.get("run_id"),
            "uptime_before_s": before.get("uptime_s"),
        }

    def _after_start(self, ctx: FaultContext) -> dict[str, Any]:
        after = _info_or_error(ctx)
        return {"run_id_after": after.get("run_id"), "uptime_after_s": after.get("uptime_s")}


class RedisRestart(_RedisStop):
    """Graceful Redis restart: SIGTERM (Redis persists per its durability mode and exits), started
    again after duration_s."""

    name = "redis-restart"
    sig = signal.SIGTERM


class RedisKill(_RedisStop):
    """Redis crash: SIGKILL (no final fsync), started again after duration_s. Acknowledged orders
    survive only with durability aof-always."""

    name = "redis-kill"
    sig = signal.SIGKILL


class RedisPause(Fault):
    """Freeze Redis with SIGSTOP for duration_s, then SIGCONT: connections stay open, every call
    times out (API answers 503)."""

    name = "redis-pause"
    role = "redis"

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        platform, comp = self.aim(ctx, REDIS)
        platform.signal(comp.name, signal.SIGSTOP)
        observed: dict[str, Any] = {"pid": comp.pid}
        # The platform says what "frozen" looks like (a stopped process, a paused container).
        observed["paused"] = wait_for(
            lambda: platform.paused(comp.name), STOP_TIMEOUT_S, "redis to be paused"
        )
        observed["probe"] = tcp_ping(*host_port(ctx.info.redis_url))
        return observed

    def recover(self, ctx: FaultContext) -> dict[str, Any]:
        platform = ctx.require_platform()
        start = time.monotonic()
        platform.signal(self.target or ctx.component_of(REDIS).name, signal.SIGCONT)
        wait_for(
            lambda: tcp_ping(*host_port(ctx.info.redis_url))["result"] == "ok",
            RESPAWN_TIMEOUT_S,
            "redis to answer PING after SIGCONT",
        )
        return {"resumed_ms": elapsed_ms(start), "probe": tcp_ping(*host_port(ctx.info.redis_url))}
