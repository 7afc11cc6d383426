"""`GuardMonitor`: an experiment's guards evaluated over the history batches as they arrive.

It observes the same batches the engine streams to the HistoryWriter (`observe`, the engine's
on_batch): cumulative counts there, at once, so `oversell_live > 0` trips at the batch that
crosses it; windowed rates and percentiles every GUARD_EVERY_S in its own thread, over a pandas
frame of the last MAX_WINDOW_S seconds of answers. The first guard that holds long enough trips
the run's AbortSwitch (flashlab.lab.abort). The grammar is flashlab.lab.guards.grammar.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flashlab.analysis.stats import outcome_flags
from flashlab.analysis.stats import response_ms
from flashlab.core.periodic import PeriodicThread
from flashlab.core.rundir import HISTORY_SCHEMA
from flashlab.lab.abort import AbortSwitch
from flashlab.lab.guards.grammar import MAX_WINDOW_S
from flashlab.lab.guards.grammar import PERCENTILES
from flashlab.lab.guards.grammar import Guard
from flashlab.lab.guards.grammar import parse_guard

GUARD_EVERY_S = 1.0
# windowed rate -> its outcome column in flashlab.analysis.stats.outcome_flags (one definition of each)
_RATE_COLUMNS = {
    "error_rate": "error",
    "availability": "available",
    "indeterminate_rate": "info",
    "server_error_rate": "server_error",
}


class GuardMonitor:
    """Observes history batches as they arrive; evaluates the guards every GUARD_EVERY_S."""

    def __init__(
        self,
        guards: list[str],
        stock: int,
        switch: AbortSwitch,
        every_s: float = GUARD_EVERY_S,
    ) -> None:
        self.guards = [parse_guard(g) for g in guards]
        self._instant = [g for g in self.guards if g.window_s is None and not g.for_s]
        self.stock = stock
        self.switch = switch
        self.every_s = every_s
        self.batches: list[pa.RecordBatch] = []  # everything received (for the steady-state check)
        self.last: dict[str, float | None] = {}  # the latest measured value per guard
        self._absorbed = 0
        self._recent: Any = None  # pandas frame of the last MAX_WINDOW_S of answers
        self._ok = 0
        self._answers = 0
        self._since: dict[str, int] = {}
        self._lock = threading.Lock()
        self._evaluator = PeriodicThread(
            "guards", every_s, lambda: self.check(time.time_ns()), done=self.switch.event.is_set
        )

    def observe(self, batch: pa.RecordBatch) -> None:
        """The engine's on_batch. Counts here (cheap), so a guard on a cumulative metric without
        `for` (e.g. `oversell_live > 0`) trips at the batch that crosses it, not a second later;
        windowed metrics are computed in the evaluation thread."""
        ok = int(pc.sum(pc.equal(batch.column("type"), "ok")).as_py() or 0)
        with self._lock:
            self.batches.append(batch)
            self._ok += ok
            self._answers += batch.num_rows
        for guard in self._instant if not self.switch.event.is_set() else ():
            measured = self.measure(guard, 0)
            if guard.holds(measured):
                self.last[guard.text] = measured
                self.switch.trip("guard", guard.text)
                return

    def start(self) -> GuardMonitor:
        if self.guards:
            self._evaluator.start()
        return self

    def stop(self) -> None:
        self._evaluator.stop()

    def received(self) -> Any:
        """Every answer received so far, as a pandas frame in the history schema."""
        with self._lock:
            batches = list(self.batches)
        return pa.Table.from_batches(batches, schema=HISTORY_SCHEMA).to_pandas()

    def _absorb(self, now_ns: int) -> None:
        with self._lock:
            new = self.batches[self._absorbed :]
            self._absorbed = len(self.batches)
        if new:
            h = pa.Table.from_batches(new, schema=HISTORY_SCHEMA).to_pandas()
            flags = outcome_flags(h)
            flags["complete_ns"] = h["complete_ns"]
            flags["response_ms"] = response_ms(h)
            frames = [f for f in (self._recent, flags) if f is not None]
            self._recent = pd.concat(frames, ignore_index=True)
        if self._recent is not None:
            keep = self._recent["complete_ns"].ge(now_ns - MAX_WINDOW_S * 1_000_000_000)
            self._recent = self._recent[keep]

    def measure(self, guard: Guard, now_ns: int) -> float | None:
        if guard.base == "oversell_live":
            return float(max(0, self._ok - self.stock))
        if guard.base == "sold_live":
            return float(self._ok)
        if guard.base == "answers_live":
            return float(self._answers)
        window = self._window(now_ns, guard.window_s or 1)
        if guard.base == "rps":
            return len(window) / (guard.window_s or 1)
        if window.empty:
            return None
        if guard.base in PERCENTILES:
            return float(np.percentile(window["response_ms"], PERCENTILES[guard.base]))
        return float(window[_RATE_COLUMNS[guard.base]].mean())

    def _window(self, now_ns: int, seconds: int) -> Any:
        if self._recent is None:
            return pd.DataFrame({"complete_ns": [], "response_ms": []})
        return self._recent[self._recent["complete_ns"].gt(now_ns - seconds * 1_000_000_000)]

    def check(self, now_ns: int) -> Guard | None:
        """Evaluate every guard at `now_ns`; trip the switch with the first that holds long enough."""
        self._absorb(now_ns)
        for guard in self.guards:
            measured = self.measure(guard, now_ns)
            self.last[guard.text] = measured
            if not guard.holds(measured):
                self._since.pop(guard.text, None)
                continue
            since = self._since.setdefault(guard.text, now_ns)
            if now_ns - since >= guard.for_s * 1e9:
                self.switch.trip("guard", guard.text)
                return guard
        return None
