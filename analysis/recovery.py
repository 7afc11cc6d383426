"""Recovery metrics per injected fault: availability during the fault, time to first success, time to recover.

"Success" here means *available*: an HTTP answer that is not a 5xx (see flashlab.analysis.stats), so a
sold-out or busy answer counts as service. After sell-out the purchase success rate is
legitimately 0; measuring recovery on purchases would make every late fault look like an outage.

Per row of faults.parquet, with the window W = [inject, recover] (recover = load end if null):
- window_availability    available / attempts among attempts *sent* (invoke_ns) inside W.
- baseline_availability  the same over the window of equal length before inject (at least
                         MIN_BASELINE_S, for instant faults); 1.0 "assumed" when it held no attempts.
- first_success_s        seconds from recover to the first available answer *received*
                         (complete_ns) at or after recover; None if none arrived.
- recovery_s             seconds from recover to the start of the first RECOVERY_BIN_S bin
                         (bins aligned at recover, attempts by invoke_ns, empty bins skipped) whose
                         availability is >= (1 - RECOVERY_TOLERANCE) * baseline; None if never.
Attempts are attributed by send time because an attempt sent during a blackhole times out after
the fault ends, yet it is the fault that failed it.

`by_fault` folds those rows per fault name, worst occurrence first, for hypothesis clauses
(`recovery.<fault>.time_to_recover_s`, `window.<fault>.availability`): the largest recovery time
(None if any occurrence never recovered), the lowest window availability, the summed attempts.
`phases` cuts the load at the first inject and the last recover (load end if it never recovered):
before_faults = attempts sent before the first inject, during_faults = sent inside that span,
after_faults = sent after it; each phase gets the run statistics of its slice of the history.
Without faults the whole load is before_faults and the other two phases are empty (None values).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flashlab.analysis.stats import NS_PER_S
from flashlab.analysis.stats import latency
from flashlab.analysis.stats import load_window
from flashlab.analysis.stats import outcome_flags
from flashlab.analysis.stats import rates
from flashlab.core.rundir import Run

RECOVERY_BIN_S = 0.25
RECOVERY_TOLERANCE = 0.10
MIN_BASELINE_S = 1.0


def _availability(available: pd.Series, mask: pd.Series) -> float | None:
    n = int(mask.sum())
    return float(available[mask].sum()) / n if n else None


def _first_success_s(h: pd.DataFrame, available: pd.Series, recover: int) -> float | None:
    done = h.loc[available & h["complete_ns"].ge(recover), "complete_ns"]
    return (int(done.min()) - recover) / NS_PER_S if len(done) else None


def _recovery_s(
    h: pd.DataFrame, available: pd.Series, recover: int, baseline: float
) -> float | None:
    after = h["invoke_ns"].ge(recover)
    if not after.any():
        return None
    bin_ns = int(RECOVERY_BIN_S * NS_PER_S)
    bins = (h.loc[after, "invoke_ns"] - recover) // bin_ns
    per_bin = available[after].groupby(bins).mean()  # only non-empty bins appear
    good = per_bin.index[per_bin.to_numpy() >= (1 - RECOVERY_TOLERANCE) * baseline]
    return float(good.min()) * RECOVERY_BIN_S if len(good) else None


def _one(
    row: pd.Series, h: pd.DataFrame, available: pd.Series, start: int, end: int
) -> dict[str, Any]:
    inject = int(row["inject_ns"])
    recover_ns = row["recover_ns"]
    recovered = recover_ns is not None and not pd.isna(recover_ns)
    recover = int(recover_ns) if recovered else max(end, inject)
    invoke = h["invoke_ns"]
    in_window = invoke.ge(inject) & invoke.le(recover)
    base_len = max(recover - inject, int(MIN_BASELINE_S * NS_PER_S))
    before = invoke.ge(inject - base_len) & invoke.lt(inject)
    baseline = _availability(available, before)
    baseline_source = "measured" if baseline is not None else "assumed"
    baseline_value = baseline if baseline is not None else 1.0
    return {
        "fault": str(row["fault"]),
        "index": int(row["index"]),
        "target": None if pd.isna(row["target"]) else str(row["target"]),
        "inject_s": (inject - start) / NS_PER_S,
        "recover_s": (recover - start) / NS_PER_S if recovered else None,
        "duration_s": (recover - inject) / NS_PER_S if recovered else None,
        "window_attempts": int(in_window.sum()),
        "window_availability": _availability(available, in_window),
        "baseline_availability": baseline_value,
        "baseline_source": baseline_source,
        "first_success_s": _first_success_s(h, available, recover) if recovered else None,
        "recovery_s": _recovery_s(h, available, recover, baseline_value) if recovered else None,
        "error": None if pd.isna(row["error"]) else str(row["error"]),
    }


def recovery(run: Run) -> list[dict[str, Any]]:
    """One dict per fault row, in schedule order."""
    faults = run.faults
    if faults.empty:
        return []
    h = run.history
    available = outcome_flags(h)["available"]
    start, end = load_window(run)
    rows = faults.sort_values(["inject_ns", "index"], kind="stable")
    return [_one(row, h, available, start, end) for _, row in rows.iterrows()]


def _worst(values: list[float | None], pick: Any) -> float | None:
    """`pick` (max/min) of values; None when there are none or any is None (never measured)."""
    if not values or any(v is None for v in values):
        return None
    return float(pick(values))


def by_fault(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per fault name: {occurrences, recovery: {...}, window: {...}}, worst case over occurrences."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["fault"] for r in rows):
        mine = [r for r in rows if r["fault"] == name]
        out[name] = {
            "occurrences": len(mine),
            "recovery": {
                "time_to_recover_s": _worst([r["recovery_s"] for r in mine], max),
                "first_success_s": _worst([r["first_success_s"] for r in mine], max),
            },
            "window": {
                "availability": _worst([r["window_availability"] for r in mine], min),
                "attempts": sum(r["window_attempts"] for r in mine),
                "baseline_availability": _worst([r["baseline_availability"] for r in mine], min),
            },
        }
    return out


def _phase_bounds(run: Run) -> tuple[int, int] | None:
    """[first inject, last recover] of faults.parquet (load end for one never recovered)."""
    faults = run.faults
    if faults.empty:
        return None
    _, end = load_window(run)
    recover = faults["recover_ns"].astype("float64").fillna(float(end))
    first = int(faults["inject_ns"].min())
    return first, max(int(recover.max()), first)


def _phase_stats(h: pd.DataFrame, start_ns: int | None, end_ns: int | None) -> dict[str, Any]:
    duration = (
        (end_ns - start_ns) / NS_PER_S if start_ns is not None and end_ns is not None else None
    )
    out: dict[str, Any] = {
        "attempts": len(h),
        **rates(h),
        "duration_s": duration,
        "throughput_rps": len(h) / duration if duration else None,
    }
    lat = latency(h)
    return out | {"latency_ms": lat["latency_ms"], "service_latency_ms": lat["service_latency_ms"]}


def phases(run: Run) -> dict[str, dict[str, Any]]:
    """before_faults / during_faults / after_faults statistics (see the module docstring)."""
    h = run.history
    start, end = load_window(run)
    bounds = _phase_bounds(run)
    if bounds is None:
        empty = _phase_stats(h.iloc[0:0], None, None)
        return {
            "before_faults": _phase_stats(h, start, end),
            "during_faults": empty,
            "after_faults": empty,
        }
    first, last = bounds
    invoke = h["invoke_ns"]
    return {
        "before_faults": _phase_stats(h[invoke.lt(first)], start, first),
        "during_faults": _phase_stats(h[invoke.ge(first) & invoke.le(last)], first, last),
        "after_faults": _phase_stats(h[invoke.gt(last)], last, max(end, last)),
    }
