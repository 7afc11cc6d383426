"""`SteadyStateCheck`: is the system in steady state just before the first fault?

Chaos Toolkit's steady-state probe before the method: the fault scheduler asks it just before
the first injection (its `gate`). It judges the hypothesis clauses that can be measured from the
answers received so far (STEADY_KEYS, also under `phase.before_faults.`) plus the stack's
readiness (GET /readyz through nginx, or a target's `health`). Not steady: no fault is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from flashlab.analysis import stats
from flashlab.analysis.hypothesis import PHASE_KEYS
from flashlab.analysis.hypothesis import parse_clause
from flashlab.analysis.summary import json_safe
from flashlab.lab.guards.monitor import GuardMonitor

PROBE_TIMEOUT_S = 2.0

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
        reference: dict[str, Any] | None = None,
    ) -> None:
        self.clauses = clauses
        # The run's capacity and ideal times (manifest["capacity"], ["ideal"]): what a relative
        # clause (`latency_ms.p99 < 2 * ideal.drain_ms`) is judged against.
        self.reference = reference or {}
        self.monitor = monitor
        # The stack's readiness (GET /readyz through nginx; a target's `health`); None: a target
        # that declares none, judged by its clauses alone.
        self.ready_url = ready_url
        self.t0_ns = t0_ns
        self.probe = probe or _get_status
        self.result: dict[str, Any] | None = None

    def measured(self) -> dict[str, Any]:
        """A summary-shaped dict of what the received answers say (also as phase.before_faults)."""
        h = self.monitor.received()
        live = {"attempts": len(h), **stats.rates(h), **stats.latency(h)}
        return self.reference | live | {"phase": {"before_faults": live}}

    def __call__(self) -> bool:
        t_s = round((time.time_ns() - self.t0_ns) / 1e9, 3)
        summary = json_safe(self.measured())
        details: list[dict[str, Any]] = []
        for clause in (parse_clause(c) for c in self.clauses):
            if not _applicable(clause.key):
                continue
            result = clause.evaluate(summary)
            # Nothing to measure yet (a fault at t=0), or a relative bound whose reference the
            # run did not measure (no capacity probe): no verdict.
            if result["measured"] is None or result["expected"] is None:
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
    try:
        return httpx.get(url, timeout=PROBE_TIMEOUT_S).status_code, None
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}".strip(": ")
