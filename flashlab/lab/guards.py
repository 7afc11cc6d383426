"""Live abort guards and the pre-fault steady-state check: judging a run *while* it runs.

A guard (k6 `abortOnFail`, Chaos Toolkit safeguards) is one line of an experiment's `guards:` list:

    guard    := <metric> <op> <number> [ "for" <seconds> "s" ]      e.g.  p99_5s_ms > 5000 for 10s
    op       := == | != | <= | >= | < | >

Metrics (GUARD_METRICS; computed from the answers the driver has received so far, `N` = a sliding
window of the last N seconds of answers by completion time, 1 <= N <= 300):

    oversell_live             max(0, acknowledged purchases so far - the experiment's stock)
    sold_live                 acknowledged purchases (`ok` answers) so far
    answers_live              answers (history rows) received so far
    error_rate_<N>s           errors / answers in the window (error: flashlab.analysis.stats)
    availability_<N>s         available answers / answers in the window
    indeterminate_rate_<N>s   `info` answers / answers in the window
    server_error_rate_<N>s    5xx other than 502/503/504 / answers in the window
    rps_<N>s                  answers per second in the window
    p50|p90|p95|p99_<N>s_ms   response time (complete - intended) percentile in the window, ms

A windowed rate or percentile over an empty window is not measured, and an unmeasured guard does
not hold. `for Ns` means the condition must hold at every evaluation for N seconds running.
Guards are evaluated every GUARD_EVERY_S by a GuardMonitor thread that observes the same history
batches the engine streams to the HistoryWriter. The first guard that trips calls
`AbortSwitch.trip`: the engines see the switch's event and stop the load (in-flight attempts end
as `info`, shoppers not yet started are not recorded), the fault scheduler is halted (every active
fault is recovered at once), and the run directory is written as usual with manifest["aborted"].
Ctrl-C during the load trips the same switch (`by: "interrupt"`).

SteadyStateCheck is the check just before the first fault (Chaos Toolkit's steady-state probe
before the method): the hypothesis clauses that can be measured from the answers received so far
(STEADY_KEYS, also under `phase.before_faults.`) plus GET /readyz through nginx.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from typing import Literal
from urllib.parse import urlsplit

import pyarrow as pa

from flashlab.analysis.hypothesis import PHASE_KEYS
from flashlab.analysis.hypothesis import holds
from flashlab.core.periodic import PeriodicThread
from flashlab.lab.events import RunEvents

GUARD_EVERY_S = 1.0
MAX_WINDOW_S = 300
PROBE_TIMEOUT_S = 2.0

_GUARD = re.compile(
    r"^\s*(?P<metric>[A-Za-z0-9_.]+)\s*(?P<op>==|!=|<=|>=|<|>)\s*"
    r"(?P<value>-?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)"
    r"(?:\s+for\s+(?P<for_s>[0-9]+(?:\.[0-9]*)?)\s*s)?\s*$"
)
# metric name -> window in seconds (None: since the load started); the windowed ones take any N.
CUMULATIVE = ("oversell_live", "sold_live", "answers_live")
_WINDOWED = re.compile(
    r"^(?P<base>error_rate|availability|indeterminate_rate|server_error_rate|rps"
    r"|p50|p90|p95|p99)_(?P<n>[0-9]+)s(?P<ms>_ms)?$"
)
_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
# windowed rate -> its outcome column in flashlab.analysis.stats.outcome_flags (one definition of each)
_RATE_COLUMNS = {
    "error_rate": "error",
    "availability": "available",
    "indeterminate_rate": "info",
    "server_error_rate": "server_error",
}
GUARD_METRICS = (
    *CUMULATIVE,
    *(f"{b}_5s" for b in ("error_rate", "availability", "indeterminate_rate", "server_error_rate")),
    "rps_5s",
    *(f"{p}_5s_ms" for p in _PERCENTILES),
)


class GuardError(ValueError):
    """A guard that does not parse: one line, with the closest valid metric when there is one."""


@dataclass(frozen=True)
class Guard:
    text: str
    metric: str
    base: str  # the metric without its window (e.g. "p99", "error_rate", "oversell_live")
    window_s: int | None
    op: str
    value: float
    for_s: float = 0.0

    def holds(self, measured: float | None) -> bool:
        return holds(measured, self.op, self.value)


def _metric(name: str, text: str) -> tuple[str, int | None]:
    if name in CUMULATIVE:
        return name, None
    match = _WINDOWED.match(name)
    is_pct = bool(match) and match["base"] in _PERCENTILES  # type: ignore[index]
    if match and is_pct == bool(match["ms"]) and 1 <= int(match["n"]) <= MAX_WINDOW_S:
        return match["base"], int(match["n"])
    close = difflib.get_close_matches(name, GUARD_METRICS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(GUARD_METRICS)}"
    raise GuardError(f"unknown guard metric {name!r} in {text!r} ({hint}; windows 1..300 s)")


def parse_guard(text: str) -> Guard:
    match = _GUARD.match(text)
    if not match:
        raise GuardError(
            f"cannot parse guard {text!r}: expected '<metric> <op> <number> [for <N>s]', "
            "e.g. 'oversell_live > 0' or 'p99_5s_ms > 5000 for 10s'"
        )
    base, window = _metric(match["metric"], text)
    for_s = float(match["for_s"] or 0.0)
    if for_s > 3600:
        raise GuardError(f"'for' longer than 3600 s in {text!r}")
    return Guard(
        text.strip(), match["metric"], base, window, match["op"], float(match["value"]), for_s
    )


# --- the abort switch ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Abort:
    """manifest["aborted"]: who stopped the run early, when (seconds after load start), why."""

    by: Literal["guard", "interrupt"]
    guard: str | None
    t_s: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AbortSwitch:
    """One run's cooperative stop: the first trip wins, sets `event` and runs the hooks once.

    `event` is what the engines watch (flashlab.simulator.engines.base.Engine.run's `stop`).
    `armed` is True while the load runs: only then does Ctrl-C abort instead of hard-stopping.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.abort: Abort | None = None
        self.t0_ns: int | None = None
        self.armed = False
        self._hooks: list[Callable[[], object]] = []
        self._lock = threading.RLock()  # reentrant: trip() may run in a signal handler

    def arm(self, t0_ns: int) -> None:
        self.t0_ns, self.armed = t0_ns, True

    def disarm(self) -> None:
        self.armed = False

    def on_trip(self, hook: Callable[[], object]) -> None:
        with self._lock:
            self._hooks.append(hook)
            tripped = self.abort is not None
        if tripped:
            hook()

    def trip(self, by: Literal["guard", "interrupt"], guard: str | None = None) -> bool:
        """Stop the run early; False if it was already stopped."""
        with self._lock:
            if self.abort is not None:
                return False
            t_s = round((time.time_ns() - (self.t0_ns or time.time_ns())) / 1e9, 3)
            what = f"guard {guard!r}" if by == "guard" else "interrupt (Ctrl-C)"
            self.abort = Abort(by, guard, t_s, f"aborted by {what} at t={t_s:.2f}s")
            hooks = list(self._hooks)
        self.event.set()
        for hook in hooks:
            with contextlib.suppress(Exception):  # a hook must never stop the others
                hook()
        return True


# --- the live view of the history ---------------------------------------------------------------


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
        import pyarrow.compute as pc

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
        return pa.Table.from_batches(batches, schema=_schema()).to_pandas()

    def _absorb(self, now_ns: int) -> None:
        import pandas as pd

        from flashlab.analysis.stats import outcome_flags
        from flashlab.analysis.stats import response_ms

        with self._lock:
            new = self.batches[self._absorbed :]
            self._absorbed = len(self.batches)
        if new:
            h = pa.Table.from_batches(new, schema=_schema()).to_pandas()
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
        if guard.base in _PERCENTILES:
            import numpy as np

            return float(np.percentile(window["response_ms"], _PERCENTILES[guard.base]))
        return float(window[_RATE_COLUMNS[guard.base]].mean())

    def _window(self, now_ns: int, seconds: int) -> Any:
        if self._recent is None:
            import pandas as pd

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


def _schema() -> pa.Schema:
    from flashlab.core.rundir import HISTORY_SCHEMA

    return HISTORY_SCHEMA


# --- the steady-state check before the first fault ----------------------------------------------

# Hypothesis keys a steady-state check can measure from the answers received so far: the phase
# keys, less the two that need the whole window (throughput over it, its duration).
STEADY_KEYS = tuple(k for k in PHASE_KEYS if k not in ("throughput_rps", "duration_s"))


def _applicable(key: str) -> bool:
    return key.removeprefix("phase.before_faults.").split(".")[0] in STEADY_KEYS


class SteadyStateCheck:
    """Called by the fault scheduler just before the first injection: True = go ahead."""

    def __init__(
        self,
        clauses: list[str],
        monitor: GuardMonitor,
        ready_url: str | None,
        t0_ns: int,
        probe: Callable[[str], tuple[int | None, str | None]] | None = None,
    ) -> None:
        self.clauses = clauses
        self.monitor = monitor
        # The stack's readiness (GET /readyz through nginx; a target's `health`); None: a target
        # that declares none, judged by its clauses alone.
        self.ready_url = ready_url
        self.t0_ns = t0_ns
        self.probe = probe or _get_status
        self.result: dict[str, Any] | None = None

    def measured(self) -> dict[str, Any]:
        """A summary-shaped dict of what the received answers say (also as phase.before_faults)."""
        from flashlab.analysis import stats

        h = self.monitor.received()
        live = {"attempts": len(h), **stats.rates(h), **stats.latency(h)}
        return live | {"phase": {"before_faults": live}}

    def __call__(self) -> bool:
        from flashlab.analysis.hypothesis import parse_clause
        from flashlab.analysis.summary import json_safe

        t_s = round((time.time_ns() - self.t0_ns) / 1e9, 3)
        summary = json_safe(self.measured())
        details: list[dict[str, Any]] = []
        for clause in (parse_clause(c) for c in self.clauses):
            if not _applicable(clause.key):
                continue
            result = clause.evaluate(summary)
            if result["measured"] is None:  # nothing to measure yet (a fault at t=0): no verdict
                details.append({"clause": clause.text, "measured": None, "ok": None})
                continue
            details.append({k: result[k] for k in ("clause", "measured", "ok")})
        if self.ready_url is not None:
            status, error = self.probe(self.ready_url)
            probe = f"GET {urlsplit(self.ready_url).path or '/'}"
            ok = status is not None and 200 <= status < 300
            details.append({"probe": probe, "status": status, "error": error, "ok": ok})
        failed = [d for d in details if d["ok"] is False]
        reason = None
        if failed:
            first = failed[0]
            what = (
                f"clause {first['clause']!r} measured {first['measured']}"
                if "clause" in first
                else f"{first['probe']} answered {first['status'] or first['error']}"
            )
            reason = f"not in steady state before the first fault at t={t_s:.2f}s: {what}; faults not injected"
        self.result = {"ok": not failed, "t_s": t_s, "reason": reason, "details": details}
        return not failed


def _get_status(url: str) -> tuple[int | None, str | None]:
    import httpx

    try:
        return httpx.get(url, timeout=PROBE_TIMEOUT_S).status_code, None
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}".strip(": ")


# --- one run's watch: what flashlab.lab.run wires around engine.run -----------------------------------


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
    ) -> None:
        self.switch = switch
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
        self.steady = SteadyStateCheck(self.hypothesis, self.monitor, self.ready_url, t0_ns)
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
