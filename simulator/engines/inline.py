"""The inline engine: every shopper on one asyncio (uvloop) loop in the calling process.

For tests and debugging; the same Collector and history as the multi-worker engines.
"""

from __future__ import annotations

import resource
import time

import uvloop

from simulator.engines.base import (
    Collector,
    Engine,
    EngineResult,
    LoadPlan,
    OnBatch,
    OnProgress,
    OnStart,
    Shares,
    choose_t0,
)
from simulator.shopper import drive


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class InlineEngine(Engine):
    name = "inline"

    def run(
        self,
        plan: LoadPlan,
        on_batch: OnBatch,
        on_progress: OnProgress | None = None,
        on_start: OnStart | None = None,
    ) -> EngineResult:
        # One worker whatever plan.workers says: the schedule is identical for any worker count.
        shares = Shares.of(LoadPlan(**{**plan.__dict__, "workers": 1}))
        collector = Collector(plan, shares, ["inline-0"], on_batch, on_progress)
        cpu0 = cpu_seconds()
        collector.t0_ns = t0 = choose_t0(on_start)
        deadline = t0 + int(plan.scenario.duration_s * 1e9)
        uvloop.run(
            drive(
                plan.spec("inline-0"),
                shares.shoppers[0],
                t0,
                deadline,
                lambda shipment: collector.ship(0, shipment),
                shares.vus[0],
            )
        )
        collector.tick(force=True)
        return collector.result(self.name, time.time_ns(), cpu_seconds() - cpu0, 0.0)

    def kill_worker(self, index: int) -> bool:
        return False  # the only worker is the caller itself

    def worker_count(self) -> int:
        return 1
