"""summary.json: the checker, statistics, recovery and reconciliation of one run, and its verdict.

The verdict is three-valued (flashlab.analysis.hypothesis.judge): "fail" when a clause of the
experiment's steady-state hypothesis (manifest.experiment.hypothesis) fails, when the run was
aborted (a live guard tripped or the user pressed Ctrl-C: manifest.aborted, copied to `aborted`),
or when the system was not in steady state before the first fault (manifest.steady_state.before;
the faults were then not injected); else "inconclusive" when a timing clause could not be judged
because the measurement is untrusted (`untrusted_timing`: the load generator was unhealthy, or CPU
isolation was requested but not applied); else "pass". `verdict_reasons` lists one line per
reason for a non-pass. `steady_state` = {before, after}: the check just before the first fault
and the hypothesis after the load. `capacity`, `ideal` and `relative` are the machine's capacity
probed before the load and timing relative to it (flashlab.analysis.capacity); a clause that
needs a capacity the run did not measure is inconclusive. Failed checks that the hypothesis does not name are reported
under `checks` but do not change the verdict: the naive phase-1 experiment fails only because its
file states `oversell == 0`. Every value is JSON-safe (no numpy types, NaN -> None).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from flashlab.analysis import capacity
from flashlab.analysis import hypothesis
from flashlab.analysis import stats
from flashlab.analysis.checker import CHECK_KEYS
from flashlab.analysis.checker import check
from flashlab.analysis.checker import figures
from flashlab.analysis.reconcile import reconcile
from flashlab.analysis.recovery import by_fault
from flashlab.analysis.recovery import phases
from flashlab.analysis.recovery import recovery
from flashlab.analysis.summary_schema import read_summary
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import SCHEMA_VERSION
from flashlab.core.rundir import SUMMARY
from flashlab.core.rundir import Run
from flashlab.core.rundir import RunDirError
from flashlab.core.rundir import load_run
from flashlab.core.rundir import write_json_atomic

__all__ = ["CHECK_KEYS", "ensure_summary", "json_safe", "summarize", "unknown_checks"]


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
    generator = stats.load_generator_health(run.manifest)
    per_fault = recovery(run)
    out: dict[str, Any] = {
        "run_id": run.run_id,
        "checks": {name: c.to_dict() for name, c in checks.items()},
        # Each check's count and figures under its declared keys (flashlab.analysis.checks).
        **{k: v for name, c in checks.items() for k, v in figures(name, c).items()},
        "sold": len(t.orders) if t.has("orders") else None,
        "acknowledged": int(h["type"].eq("ok").sum()),
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
        # The CPU split the run asked for and got (flashlab.core.isolation), as recorded.
        "isolation": run.manifest.get("isolation"),
        # How steady the host's CPU speed was during the load (flashlab.lab.hostspeed), as recorded.
        "host_speed": host_speed(run.manifest),
        # The machine's capacity, probed before the load (flashlab.lab.capacity), as recorded.
        "capacity": capacity.capacity(run.manifest),
    }
    out["ideal"] = capacity.ideal(out["capacity"], _planned_shoppers(run), t.stock_initial)
    return out


def _planned_shoppers(run: Run) -> int | None:
    """The experiment's shoppers (every one of them is what `ideal.drain_s` drains), else those
    the history saw."""
    scenario = (run.manifest.get("experiment") or {}).get("scenario") or {}
    planned = scenario.get("shoppers")
    return planned if isinstance(planned, int) else int(run.history["shopper"].nunique())


def isolation(manifest: dict[str, Any]) -> dict[str, Any]:
    """manifest["isolation"] as recorded; absent (older runs, no isolation support) = not requested."""
    raw = manifest.get("isolation")
    if isinstance(raw, dict):
        return dict(raw)
    return {"mode": "off", "requested": False, "applied": False, "reason": "not recorded"}


def host_speed(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """manifest["host_speed"] (per side: cpus, samples, median/p10/p90 us, spread); None if absent."""
    raw = manifest.get("host_speed")
    return {side: dict(v) for side, v in raw.items() if isinstance(v, dict)} if raw else None


def host_unsteadiness(summary: dict[str, Any]) -> tuple[float | None, str]:
    """(the worst side's speed spread, one line saying so) for the judge; (None, "") unmeasured."""
    worst = stats.worst_host_spread(summary.get("host_speed"))
    if worst is None:
        return None, ""
    side, spread = worst
    cpus = ",".join(str(c) for c in summary["host_speed"][side].get("cpus") or []) or "all"
    why = (
        f"host CPU speed unsteady during the load ({side} CPUs {cpus}: the probe's fixed work "
        f"took {spread:.2f}x longer at p90 than at p10; a shared host, docs/METHOD.md)"
    )
    return spread, why


def untrusted_timing(summary: dict[str, Any]) -> list[str]:
    """Why this run's timings cannot be trusted (empty list: they can)."""
    reasons = []
    gen = summary.get("generator") or {}
    if gen.get("healthy") is False:
        lag, stalled = gen.get("lag_ms_p99"), gen.get("stalled_s")
        reasons.append(
            f"load generator unhealthy (lag p99 {_num(lag)} ms, stalled {_num(stalled, 2)} s)"
        )
    iso = summary.get("isolation") or {}
    if iso.get("requested") and not iso.get("applied"):
        why = iso.get("reason") or "no reason recorded"
        reasons.append(f"CPU isolation requested but not applied ({why})")
    return reasons


def _num(value: Any, digits: int = 0) -> str:
    return "?" if value is None else f"{float(value):.{digits}f}"


def aborted_reason(aborted: dict[str, Any]) -> str:
    """ "aborted by guard 'oversell_live > 0' at t=1.23s" / "aborted by interrupt at t=...s"."""
    if aborted.get("reason"):
        return str(aborted["reason"])  # the live monitor wrote it in these words
    by = aborted.get("by") or "unknown"
    what = f"guard '{aborted['guard']}'" if by == "guard" and aborted.get("guard") else by
    at = aborted.get("t_s")
    when = f" at t={float(at):.2f}s" if isinstance(at, int | float) else ""
    return f"aborted by {what}{when}"


def steady_state_reason(before: dict[str, Any] | None) -> str | None:
    """Why the system was not in steady state before the first fault (None: it was, or no check)."""
    if before is None or before.get("ok", True):
        return None
    return str(before.get("reason") or "not in steady state before the first fault")


def unknown_checks(summary: dict[str, Any]) -> dict[str, str]:
    """summary key -> why its check gave no answer, for every check whose `ok` is None: it could
    not run (unknown) or it does not apply to this backend (n/a, with the facts it needs)."""
    checks = summary.get("checks") or {}
    return {
        key: _no_answer(name, checks[name])
        for key, name in CHECK_KEYS.items()
        if name in checks and checks[name].get("ok") is None
    }


def _no_answer(name: str, check: dict[str, Any]) -> str:
    if check.get("na"):
        return f"check {name} is n/a: {check['na']}"
    return f"check {name} {check.get('detail') or 'could not run'}"


def not_offered(run: Run) -> dict[str, str]:
    """summary key -> why the backend's truth cannot give it (a target whose file reads no such
    thing): clauses on these keys are inconclusive, never failed for a number nobody could read."""
    t = run.truth
    out: dict[str, str] = {}
    if not t.has("stock"):
        out["stock_remaining"] = "the truth reads no stock (its target file's truth: has none)"
    if not t.has("orders"):
        out["sold"] = "the truth reads no orders (its target file's truth: has none)"
    if not (t.has("orders") and t.has("ts_ms")):
        out["sellout_s"] = "the truth reads no order times"
    return out


def summarize(run: Run) -> dict[str, Any]:
    """Every summary.json key (all of flashlab.analysis.hypothesis.SUMMARY_KEYS among them) plus the verdict."""
    summary = json_safe(_measurements(run))
    summary["isolation"] = json_safe(isolation(run.manifest))
    summary["relative"] = capacity.relative(summary)
    passed, measured = hypothesis.evaluate(_clauses(run), summary)
    unjudged = not_offered(run) | unknown_checks(summary) | capacity.unmeasured(summary)
    clauses, verdict, reasons = hypothesis.judge(
        measured, untrusted_timing(summary), unjudged, host_unsteadiness(summary)
    )
    before = (run.manifest.get("steady_state") or {}).get("before")
    summary["steady_state"] = json_safe({"before": before, "after": {"ok": passed}})
    if (not_steady := steady_state_reason(before)) is not None:
        verdict, reasons = "fail", [not_steady, *reasons]
    aborted = run.manifest.get("aborted")
    summary["aborted"] = json_safe(aborted) if isinstance(aborted, dict) else None
    if isinstance(aborted, dict):
        verdict, reasons = "fail", [aborted_reason(aborted), *reasons]
    summary["hypothesis"] = json_safe(clauses)
    summary["verdict"] = verdict
    summary["verdict_reasons"] = reasons
    summary["failed_checks"] = [n for n, c in summary["checks"].items() if c["ok"] is False]
    summary["unknown_checks"] = [
        n for n, c in summary["checks"].items() if c["ok"] is None and not c.get("na")
    ]
    summary["na_checks"] = {n: c["na"] for n, c in summary["checks"].items() if c.get("na")}
    # Verdict and headline first, for humans reading the file.
    head_keys = (
        "run_id",
        "verdict",
        "verdict_reasons",
        "aborted",
        "hypothesis",
        "failed_checks",
        "unknown_checks",
        "na_checks",
    )
    head = {k: summary.pop(k) for k in head_keys}
    return {"schema_version": SCHEMA_VERSION} | head | summary


def ensure_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a run directory, computed with `summarize` and written first if missing."""
    path = run_dir / SUMMARY
    if not path.exists():
        write_json_atomic(path, summarize(load_run(run_dir, require_complete=False)))
    return read_summary(path)
