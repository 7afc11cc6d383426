"""The inline engine: every shopper on one asyncio (uvloop) loop in the calling process.

For tests and debugging; the same Collector and history as the multi-worker engines.
"""

from __future__ import annotations

import time

import uvloop

from flashlab.simulator.engines.engine import Collector
from flashlab.simulator.engines.engine import Engine
from flashlab.simulator.engines.engine import EngineResult
from flashlab.simulator.engines.engine import LoadPlan
from flashlab.simulator.engines.engine import OnStart
from flashlab.simulator.engines.engine import Shares
from flashlab.simulator.engines.engine import cpu_seconds
from flashlab.simulator.shopper import drive


class InlineEngine(Engine):
    name = "inline"
    worker_prefix = "inline"

    def _shares(self, plan: LoadPlan) -> Shares:
        # One worker whatever plan.workers says: the schedule is identical for any worker count.
        return Shares.of(LoadPlan(**{**plan.__dict__, "workers": 1}))

    def _run(self, plan: LoadPlan, collector: Collector, on_start: OnStart | None) -> EngineResult:
        shares = collector.shares
        cpu0 = cpu_seconds()
        deadline = collector.start_clock(on_start)
        uvloop.run(
            drive(
                plan.spec("inline-0"),
                shares.shoppers[0],
                collector.t0_ns,
                deadline,
                lambda shipment: collector.ship(0, shipment),
                shares.vus[0],
                collector.stop.is_set,
            )
        )
        collector.tick(force=True)
        return collector.result(self.name, time.time_ns(), cpu_seconds() - cpu0, 0.0)

    def kill_worker(self, index: int) -> bool:
        return False  # the only worker is the caller itself

    def worker_count(self) -> int:
        return 1
