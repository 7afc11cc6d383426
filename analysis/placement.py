"""Fault placement: did each fault land while stock remained and purchases were in flight?

A chaos run proves little if its faults land after the sale is over. For every injected fault
(faults.parquet) this reads the history and the truth of a run directory and answers:

- `stock_remaining_at_inject`: units not yet sold (truth order log) at injection time;
- `in_flight`: purchase attempts whose [invoke, complete] overlaps the fault window
  [inject, recover] (a fault that never recovered: up to the end of the load). The window
  ends when the fault's *effect* ended: a worker kill "recovers" the instant the signal is
  sent, but the worker is gone until it respawns (`observed.recovered_ns`, ~0.9 s), and a
  purchase sent meanwhile meets the fault - so the later of the two ends counts;
- `ok_in_window`: successful purchases that completed inside the window;
- `hit`: stock remained at injection and some purchase was in flight during the window.

`after_sellout(run)` lists the faults that missed: the one-line reasons `flashlab demo` fails on.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from flashlab.core.rundir import Run

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def _load_start_ns(run: Run) -> int:
    start = run.manifest.get("load_start_ns")
    return int(start) if start is not None else int(run.history["invoke_ns"].min())


def _window_end(fault: dict[str, Any], load_end_ns: int) -> int:
    """When the fault's effect ended: the later of recover_ns and the observed recovery."""
    recover = fault.get("recover_ns")
    if recover is None or recover != recover:  # never recovered (None or NaN)
        return load_end_ns
    observed = fault.get("observed")
    try:
        effect = json.loads(observed).get("recovered_ns") if isinstance(observed, str) else None
    except (ValueError, AttributeError):
        effect = None  # a damaged record: the scheduler's own recover time still stands
    return max(int(recover), int(effect)) if isinstance(effect, int) else int(recover)


def _sale_times_ns(run: Run) -> np.ndarray:
    """When each unit was sold, sorted: the truth's order log, or (a target whose truth has no
    order times) when each acknowledgement arrived."""
    t = run.truth
    if t.has("orders") and t.has("ts_ms"):
        ms = [o.ts_ms for o in t.orders if o.ts_ms is not None]
        return np.sort(np.array(ms, dtype="int64")) * NS_PER_MS
    h = run.history
    return np.sort(h.loc[h["type"].eq("ok"), "complete_ns"].to_numpy(dtype="int64"))


def placement(run: Run) -> list[dict[str, Any]]:
    """One row per injected fault (see the module doc), in schedule order."""
    start = _load_start_ns(run)
    end = int(run.manifest.get("load_end_ns") or run.history["complete_ns"].max())
    orders_ns = _sale_times_ns(run)
    initial = run.truth.stock_initial
    h = run.history
    ok = h["code"].eq("ok").to_numpy()
    invoke, complete = h["invoke_ns"].to_numpy(), h["complete_ns"].to_numpy()
    rows = []
    for fault in run.faults.sort_values("index").to_dict("records"):
        inject = int(fault["inject_ns"])
        window_end = _window_end(fault, end)
        sold = int(np.searchsorted(orders_ns, inject, side="right"))
        overlapping = (invoke <= window_end) & (complete >= inject)
        remaining = max(0, initial - sold)
        in_flight = int(overlapping.sum())
        rows.append(
            {
                "fault": fault["fault"],
                "index": int(fault["index"]),
                "inject_s": (inject - start) / NS_PER_S,
                "recover_s": (window_end - start) / NS_PER_S,
                "stock_remaining_at_inject": remaining,
                "in_flight": in_flight,
                "ok_in_window": int((ok & (complete >= inject) & (complete <= window_end)).sum()),
                "hit": remaining > 0 and in_flight > 0,
            }
        )
    return rows


def missed(run: Run) -> list[str]:
    """One line per fault that landed after sell-out or with no purchase in flight."""
    out = []
    for row in placement(run):
        if row["hit"]:
            continue
        why = (
            "after sell-out (no stock remained)"
            if row["stock_remaining_at_inject"] == 0
            else "with no purchase in flight"
        )
        out.append(
            f"fault {row['fault']} (#{row['index']}) landed at {row['inject_s']:.2f} s {why}"
        )
    return out
