"""Simulator faults: kill a load-generator worker (Ray actor or process) mid-flight.

What its shoppers had in flight becomes indeterminate; the history must still be consistent.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flashlab.chaos.faults.fault import Fault
from flashlab.chaos.faults.fault import FaultContext
from flashlab.chaos.faults.fault import FaultError
from flashlab.chaos.faults.fault import FaultParams


class ActorKillParams(FaultParams):
    worker: int = Field(default=0, ge=0, description="engine worker index (modulo worker count)")


class ActorKill(Fault):
    """Kill one load-generator worker (Ray actor / process) mid-flight; its in-flight requests
    become indeterminate."""

    name = "actor-kill"
    Params = ActorKillParams
    params: ActorKillParams  # what Params validated (Fault.__init__)

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        engine = ctx.engine
        if engine is None or not hasattr(engine, "kill_worker"):
            raise FaultError("actor-kill needs a running load engine that can kill workers")
        count = int(engine.worker_count())
        if count < 1:
            raise FaultError("actor-kill: the engine has no workers left")
        index = self.params.worker % count
        self.target = f"engine-worker-{index}"
        if engine.kill_worker(index) is False:
            raise FaultError(f"actor-kill: engine worker {index} is not running")
        return {"worker": index, "workers": count}
