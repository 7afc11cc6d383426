"""summary.json: the checker, statistics, recovery and reconciliation of one run, and its verdict.

The verdict is "fail" when a clause of the experiment's steady-state hypothesis
(manifest.experiment.hypothesis) fails, when the run was aborted (a live guard tripped or the user
pressed Ctrl-C: manifest.aborted, copied to `aborted`), or when the system was not in steady state
before the first fault (manifest.steady_state.before; the faults were then not injected).
`verdict_reasons` says why in one line each. `steady_state` = {before, after}: the check just
before the first fault and the hypothesis after the load. Failed checks that the hypothesis does
not name are reported under `checks` but do not change the verdict: the naive phase-1 experiment
fails only because its file states `oversell == 0`. Every value is JSON-safe (no numpy types,
NaN -> None).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from flashlab.analysis import hypothesis, stats
from flashlab.analysis.checker import check
from flashlab.analysis.reconcile import reconcile
from flashlab.analysis.recovery import by_fault, phases, recovery
from flashlab.analysis.rundir import Run

# summary key <- check name, for the anomaly counts a hypothesis can name directly
CHECK_KEYS = {
    "oversell": "oversell",
    "negative_stock": "negative_stock",
    "lost_acknowledged": "lost_acknowledged",
    "duplicate_purchases": "duplicate_purchases",
    "phantom_orders": "phantom_orders",
    "conservation_errors": "conservation",
}


def json_safe(value: Any) -> Any:
    """Recursively turn numpy scalars into Python ones and NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clauses(run: Run) -> list[str]:
    experiment = run.manifest.get("experiment") or {}
    return list(experiment.get("hypothesis") or [])


def _measurements(run: Run) -> dict[str, Any]:
    h, t = run.history, run.truth
    checks = check(run)
    generator = stats.generator(run.manifest)
    per_fault = recovery(run)
    out: dict[str, Any] = {
        "run_id": run.run_id,
        "checks": {name: c.to_dict() for name, c in checks.items()},
        **{key: checks[name].count for key, name in CHECK_KEYS.items()},
        "sold": len(t.orders),
        "stock_initial": t.stock_initial,
        "stock_remaining": t.stock_remaining,
        "strategy": t.strategy,
        "shoppers": int(h["shopper"].nunique()),
        "attempts": len(h),
        **stats.rates(h),
        **stats.latency(h),
        "duration_s": stats.duration_s(run),
        "throughput_rps": stats.throughput_rps(run),
        **stats.sellout(run),
        "fairness": stats.fairness(run),
        "codes": stats.codes(h),
        "recovery": per_fault,
        "by_fault": by_fault(per_fault),
        "phase": phases(run),
        "reconciliation": reconcile(run),
        "timeseries": stats.compact_timeseries(stats.timeseries(run)),
        # Read only from manifest.engine.generator; flat copies so a hypothesis can name them.
        "generator": generator,
        "generator_lag_ms_p99": generator["lag_ms_p99"],
        "generator_stalled_s": generator["stalled_s"],
    }
    return out


def _reasons(summary: dict[str, Any]) -> list[str]:
    """One line per cause of a non-pass verdict: the abort, the steady state before, each clause."""
    reasons = []
    if summary.get("aborted"):
        reasons.append(str(summary["aborted"]["reason"]))
    before = summary["steady_state"]["before"]
    if before is not None and not before.get("ok", True):
        reasons.append(str(before.get("reason") or "not in steady state before the first fault"))
    for c in summary["hypothesis"]:
        if not c["ok"]:
            reasons.append(f"clause {c['clause']!r} failed: measured {c['measured']}")
    return reasons


def summarize(run: Run) -> dict[str, Any]:
    """Every summary.json key (all of flashlab.analysis.hypothesis.SUMMARY_KEYS among them) plus the verdict."""
    summary = json_safe(_measurements(run))
    passed, clauses = hypothesis.evaluate(_clauses(run), summary)
    summary["hypothesis"] = json_safe(clauses)
    summary["aborted"] = run.manifest.get("aborted")
    before = (run.manifest.get("steady_state") or {}).get("before")
    summary["steady_state"] = {"before": before, "after": {"ok": passed}}
    summary["verdict_reasons"] = _reasons(summary)
    summary["verdict"] = "fail" if summary["verdict_reasons"] else "pass"
    failed = [name for name, c in summary["checks"].items() if not c["ok"]]
    summary["failed_checks"] = failed
    # Verdict and headline first, for humans reading the file.
    head = {
        k: summary.pop(k)
        for k in ("run_id", "verdict", "verdict_reasons", "aborted", "hypothesis", "failed_checks")
    }
    return head | summary
