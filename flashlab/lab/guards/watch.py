"""`RunWatch`: one run's guards, abort switch and pre-fault steady-state check, wired together.

flashlab.lab.run hands it the load's history batches (`tee`) and the run's events: the guards
arm at `load_started`, the fault scheduler takes its `steady_state_gate`, and `record` writes
manifest["aborted"] and manifest["steady_state"] afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from flashlab.lab.abort import AbortSwitch
from flashlab.lab.events import RunEvents
from flashlab.lab.guards.monitor import GuardMonitor
from flashlab.lab.guards.steady import SteadyStateCheck


class RunWatch(RunEvents):
    """The guards, the abort switch and the pre-fault steady-state check of one run.

    It listens to the run's events (flashlab.lab.events): the guards arm at `load_started`."""

    def __init__(
        self,
        guards: list[str],
        hypothesis: list[str],
        stock: int,
        ready_url: str | None,
        switch: AbortSwitch,
        reference: dict[str, Any] | None = None,
    ) -> None:
        self.switch = switch
        self.reference = reference  # capacity and ideal times, for relative clauses
        self.monitor = GuardMonitor(guards, stock, switch)
        self.hypothesis = hypothesis
        self.ready_url = ready_url
        self.steady: SteadyStateCheck | None = None

    def tee(self, write: Callable[[pa.RecordBatch], None]) -> Callable[[pa.RecordBatch], None]:
        """An on_batch that writes the batch, then lets the guards see it."""

        def on_batch(batch: pa.RecordBatch) -> None:
            write(batch)
            self.monitor.observe(batch)

        return on_batch

    def start(self, t0_ns: int) -> None:
        """The load starts: Ctrl-C now aborts (instead of hard-stopping); guards run."""
        self.switch.arm(t0_ns)
        self.monitor.start()

    def load_started(self, t0_ns: int) -> None:
        self.start(t0_ns)

    def steady_state_gate(self, t0_ns: int) -> SteadyStateCheck:
        self.steady = SteadyStateCheck(
            self.hypothesis, self.monitor, self.ready_url, t0_ns, reference=self.reference
        )
        return self.steady

    def stop(self) -> None:
        """The load ended (or failed): Ctrl-C hard-stops again; guards stop. Idempotent."""
        self.switch.disarm()
        self.monitor.stop()

    def record(self, manifest: dict[str, Any], gated: bool) -> None:
        """manifest["aborted"] and manifest["steady_state"]["before"], when there is something."""
        if self.switch.abort is not None:
            manifest["aborted"] = self.switch.abort.to_dict()
        if self.steady is None:
            return
        before = self.steady.result
        if before is None and gated:  # the check itself raised: treated as not steady
            before = {
                "ok": False,
                "t_s": None,
                "reason": "steady-state check failed to run; faults not injected",
                "details": [],
            }
        # None: the first fault was never due (the load ended or was aborted before it).
        manifest["steady_state"] = {"before": before}
