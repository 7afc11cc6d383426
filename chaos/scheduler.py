"""The fault scheduler: runs an experiment's fault schedule against a stack in background threads.

`repeat` is expanded up front into one occurrence per firing, ordered by time. A dispatcher thread
sleeps until each occurrence's time (t0 + at_s), then starts a thread that injects it, waits
duration_s and recovers it. Every occurrence that started becomes one row of faults.parquet
(flashlab.core.rundir.FAULTS_SCHEMA). A failing injection is recorded and the run goes on; recovery is
attempted anyway, because a half-injected fault (Redis paused, a toxic on) must never outlive the
run. `stop()` cuts every pending duration short, recovers what is still injected, and is bounded.
`halt()` does the same without waiting (safe from a signal handler or a guard thread).
An optional `gate` (flashlab.lab.guards.steady.SteadyStateCheck) is asked just before the first injection;
if it answers False no fault is injected at all (`gated` records it).
`node` names who injects (faults.parquet's `node` column): "driver" in the lab's own process, a
Ray node id when the scheduler runs in the nemesis actor (flashlab.lab.nemesis).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pyarrow as pa

from flashlab.chaos.faults import make_fault
from flashlab.chaos.faults.fault import Fault
from flashlab.chaos.faults.fault import FaultContext
from flashlab.chaos.spec import FaultSpec
from flashlab.core.platform import Platform
from flashlab.core.platform import StackInfo
from flashlab.core.rundir import FAULTS_SCHEMA

STOP_TIMEOUT_S = 90.0  # generous: a recovery may restart Redis and wait for workers


@dataclass
class Occurrence:
    """One firing of a fault spec: when it is due, what it did, what went wrong."""

    index: int
    at_s: float  # seconds after t0
    duration_s: float
    fault: Fault
    inject_ns: int | None = None
    recover_ns: int | None = None
    observed: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def row(self, node: str | None = None) -> dict[str, Any]:
        return {
            "fault": self.fault.name,
            "index": self.index,
            "target": self.fault.target,
            "inject_ns": self.inject_ns,
            "recover_ns": self.recover_ns,
            "params": json.dumps(self.fault.params.model_dump(mode="json"), sort_keys=True),
            "observed": json.dumps(self.observed, sort_keys=True, default=str),
            "error": "; ".join(self.errors) or None,
            "node": node,
        }


def expand(specs: list[FaultSpec]) -> list[tuple[float, FaultSpec]]:
    """(at_s, spec) for every firing, `repeat` unrolled, sorted by time (stable for ties)."""
    firings: list[tuple[float, FaultSpec]] = []
    for spec in specs:
        count = spec.repeat.count if spec.repeat else 1
        every = spec.repeat.every_s if spec.repeat else 0.0
        firings.extend((spec.at_s + k * every, spec) for k in range(count))
    return sorted(firings, key=lambda item: item[0])


def _error(stage: str, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{stage}: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class FaultScheduler:
    """Inject each fault at t0 + at_s, recover it after duration_s; record everything."""

    def __init__(
        self,
        specs: list[FaultSpec],
        ctx: FaultContext,
        t0_ns: int,
        *,
        on_event: Callable[[str, Occurrence], None] | None = None,
        gate: Callable[[], bool] | None = None,
        node: str = "driver",
    ) -> None:
        self.ctx = ctx
        self.node = node
        self.t0_ns = t0_ns
        self.on_event = on_event
        self.gate = gate
        self.gated = False  # True when the gate refused the first injection
        self.occurrences = [
            Occurrence(i, at_s, spec.duration_s, make_fault(spec.fault, spec.params, index=i))
            for i, (at_s, spec) in enumerate(expand(specs))
        ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._dispatcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def for_run(
        cls,
        specs: list[FaultSpec],
        platform: Platform | None,
        info: StackInfo,
        engine: Any | None,
        t0_ns: int,
        **kwargs: Any,
    ) -> FaultScheduler:
        return cls(
            specs, FaultContext(info=info, platform=platform, engine=engine), t0_ns, **kwargs
        )

    # --- running -----------------------------------------------------------------------------

    def start(self) -> FaultScheduler:
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="fault-dispatcher", daemon=True
        )
        self._dispatcher.start()
        return self

    def _due_in(self, at_s: float) -> float:
        return (self.t0_ns + at_s * 1e9 - time.time_ns()) / 1e9

    def _dispatch(self) -> None:
        for occ in self.occurrences:
            # Event.wait doubles as an interruptible sleep: stop() wakes us at once.
            if self._stop.wait(max(0.0, self._due_in(occ.at_s))):
                return
            if occ.index == 0 and self.gate is not None and not self._gate_open():
                self.gated = True
                return
            thread = threading.Thread(
                target=self._run,
                args=(occ,),
                name=f"fault-{occ.index}-{occ.fault.name}",
                daemon=True,
            )
            with self._lock:
                if self._stop.is_set():
                    return
                self._threads.append(thread)
            thread.start()

    def _gate_open(self) -> bool:
        try:
            return self.gate is not None and bool(self.gate())
        except Exception:  # a broken check must not inject faults into an unknown state
            return False

    def _run(self, occ: Occurrence) -> None:
        try:
            self._inject(occ)
            # Holding the fault for its duration; stop() cuts it short, never skips recovery.
            self._stop.wait(occ.duration_s)
            self._recover(occ)
        finally:
            occ.done.set()

    def _inject(self, occ: Occurrence) -> None:
        occ.inject_ns = time.time_ns()
        occ.observed["late_ms"] = round((occ.inject_ns - self.t0_ns) / 1e6 - occ.at_s * 1000, 1)
        try:
            occ.observed["inject"] = occ.fault.inject(self.ctx)
        except Exception as exc:  # recorded in faults.parquet; the run goes on
            occ.errors.append(_error("inject", exc))
        self._emit("inject", occ)

    def _recover(self, occ: Occurrence) -> None:
        occ.recover_ns = time.time_ns()
        try:
            occ.observed["recover"] = occ.fault.recover(self.ctx)
        except Exception as exc:
            occ.errors.append(_error("recover", exc))
        occ.observed["recovered_ns"] = time.time_ns()
        self._emit("recover", occ)

    def _emit(self, event: str, occ: Occurrence) -> None:
        if self.on_event is not None:
            # A progress printer must never break fault handling.
            with contextlib.suppress(Exception):
                self.on_event(event, occ)

    # --- finishing ---------------------------------------------------------------------------

    def started(self) -> list[Occurrence]:
        return [occ for occ in self.occurrences if occ.inject_ns is not None]

    def wait(self, timeout_s: float) -> bool:
        """Block until every occurrence has been injected and recovered; True if all finished."""
        deadline = time.monotonic() + timeout_s
        return all(occ.done.wait(max(0.0, deadline - time.monotonic())) for occ in self.occurrences)

    def halt(self) -> None:
        """No new injections; every held fault starts recovering now. Returns at once."""
        self._stop.set()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """No new injections; recover everything injected now; wait at most `timeout_s`. Idempotent."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        if self._dispatcher is not None:
            self._dispatcher.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for occ in self.started():
            if not occ.done.is_set() and not any("did not finish" in e for e in occ.errors):
                occ.errors.append(f"recover: did not finish within {timeout_s:.0f}s of stop")
        if not self._closed:
            self._closed = True
            self.ctx.close()

    def skipped(self) -> int:
        """Occurrences never injected (the load ended before their time)."""
        return sum(1 for occ in self.occurrences if occ.inject_ns is None)

    def table(self) -> pa.Table:
        rows = [occ.row(self.node) for occ in self.started()]
        return pa.Table.from_pylist(rows, schema=FAULTS_SCHEMA)
