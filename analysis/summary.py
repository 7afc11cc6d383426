"""summary.json: the checker, statistics, recovery and reconciliation of one run, and its verdict.

The verdict is "fail" exactly when a clause of the experiment's steady-state hypothesis
(manifest.experiment.hypothesis) fails. Failed checks that the hypothesis does not name are
reported under `checks` but do not change the verdict: the naive phase-1 experiment fails only
because its file states `oversell == 0`. Every value is JSON-safe (no numpy types, NaN -> None).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from flashlab.analysis import hypothesis, stats
from flashlab.analysis.checker import check
from flashlab.analysis.reconcile import reconcile
from flashlab.analysis.recovery import recovery
from flashlab.analysis.rundir import MANIFEST, SCHEMA_VERSION, Run, RunDirError

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
    """The experiment's clauses from manifest.json, each parsed: a damaged one is a RunDirError."""
    experiment = run.manifest.get("experiment") or {}
    clauses = experiment.get("hypothesis") or []
    where = f"{run.path / MANIFEST}: experiment.hypothesis"
    if not isinstance(clauses, list) or not all(isinstance(c, str) for c in clauses):
        raise RunDirError(f"{where}: expected a list of clauses")
    for clause in clauses:
        try:
            hypothesis.parse_clause(clause)
        except hypothesis.HypothesisError as exc:
            raise RunDirError(f"{where}: {exc}") from None
    return list(clauses)


def _measurements(run: Run) -> dict[str, Any]:
    h, t = run.history, run.truth
    checks = check(run)
    generator = stats.generator(run.manifest)
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
        "recovery": recovery(run),
        "reconciliation": reconcile(run),
        "timeseries": stats.compact_timeseries(stats.timeseries(run)),
        # Read only from manifest.engine.generator; flat copies so a hypothesis can name them.
        "generator": generator,
        "generator_lag_ms_p99": generator["lag_ms_p99"],
        "generator_stalled_s": generator["stalled_s"],
    }
    return out


def summarize(run: Run) -> dict[str, Any]:
    """Every summary.json key (all of flashlab.analysis.hypothesis.SUMMARY_KEYS among them) plus the verdict."""
    summary = json_safe(_measurements(run))
    passed, clauses = hypothesis.evaluate(_clauses(run), summary)
    summary["hypothesis"] = json_safe(clauses)
    summary["verdict"] = "pass" if passed else "fail"
    failed = [name for name, c in summary["checks"].items() if not c["ok"]]
    summary["failed_checks"] = failed
    # Verdict and headline first, for humans reading the file.
    head = {k: summary.pop(k) for k in ("run_id", "verdict", "hypothesis", "failed_checks")}
    return {"schema_version": SCHEMA_VERSION} | head | summary
