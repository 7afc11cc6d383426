"""Benchmark `chaos`: what a fault costs - p99 and throughput inside vs outside its window.

One lab run per fault (redis-kill, worker-kill) through the run orchestration, lua, a steady
Poisson load with stock for everyone (so sell-out never changes what a request costs), the fault
injected a third of the way in. Inside = ops whose *intended* send time falls between a fault's
injection and its recovery (faults.parquet) - by intended, not actual, send time, because a stall
delays the sends themselves; before = earlier (the baseline), after = later (where the fault's
backlog and retries land). p99 is response time (from the intended send), so queueing behind a
stall counts. Ratios inside/before and after/before per fault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flashlab.bench.context import REPO_ROOT
from flashlab.bench.context import BenchContext
from flashlab.bench.engine_runs import pct_ms
from flashlab.bench.plotting import pyplot
from flashlab.bench.plotting import save_plot
from flashlab.bench.results import now_iso
from flashlab.bench.results import ratio
from flashlab.bench.results import result_line
from flashlab.bench.runs import LabRun
from flashlab.bench.runs import execute
from flashlab.bench.runs import experiment_from
from flashlab.bench.runs import scratch

NAME = "chaos"
BASE = REPO_ROOT / "experiments" / "matrix-base.yaml"
FAULTS = ("redis-kill", "worker-kill")


def _params(ctx: BenchContext) -> dict[str, Any]:
    shoppers, rate = (300, 150) if ctx.tiny else (4_800, 400)
    load_s = shoppers / rate
    return {
        "base": str(BASE.relative_to(REPO_ROOT)),
        "faults": list(FAULTS),
        "shoppers": shoppers,
        "rate_per_s": rate,
        "stock": shoppers,
        "strategy": "lua",
        "durability": "aof-everysec",
        "fault_at_s": round(load_s / 3, 2),
        # The first seconds of any run pay connection set-up and catch-up: not a fair baseline.
        "warmup_s": round(min(2.0, load_s / 6), 2),
        "fault_duration_s": 0.5 if ctx.tiny else 2.0,
        "engine": {"kind": "process", "workers": 2, "connections": 64},
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    started = now_iso()
    p = _params(ctx)
    per: dict[str, dict[str, Any]] = {}
    series: dict[str, dict[str, Any]] = {}
    with scratch() as out:
        for fault in p["faults"]:
            ctx.log(f"chaos: {fault} under {p['rate_per_s']}/s")
            lab = execute(_experiment(p, fault), out)
            per[fault], series[fault] = _measure(lab, p["warmup_s"])
    ratios: dict[str, Any] = {}
    for fault, m in per.items():
        base = m["before"]
        for phase in ("inside", "after"):
            ratios[f"{fault}_p99_{phase}_over_before"] = ratio(m[phase]["p99_ms"], base["p99_ms"])
            ratios[f"{fault}_ok_rps_{phase}_over_before"] = ratio(
                m[phase]["ok_rps"], base["ok_rps"]
            )
        ratios[f"{fault}_error_rate_inside"] = m["inside"]["error_rate"]
    plot = _plot(ctx, series)
    # No pass/fail targets were set for chaos cost: it is a measurement to track across revisions.
    return result_line(ctx, NAME, started, p, {"faults": per}, ratios, {}, plot)


def _experiment(p: dict[str, Any], fault: str) -> Any:
    return experiment_from(
        BASE,
        {
            "name": f"bench-chaos-{fault}",
            "stack": {"durability": p["durability"], "prometheus": False},
            "product": {"id": "bench-chaos", "stock": p["stock"], "strategy": p["strategy"]},
            "scenario": {
                "shoppers": p["shoppers"],
                "arrival": {"kind": "poisson", "rate_per_s": p["rate_per_s"]},
                "duration_s": p["shoppers"] / p["rate_per_s"] * 2 + 15,
            },
            "engine": p["engine"],
            "faults": [
                {"fault": fault, "at_s": p["fault_at_s"], "duration_s": p["fault_duration_s"]}
            ],
            "hypothesis": ["oversell == 0"],
        },
    )


def _windows(lab: LabRun) -> list[tuple[int, int]]:
    end = lab.manifest["load_end_ns"]
    out = []
    for _, row in lab.faults.iterrows():
        rec = row["recover_ns"]
        out.append((int(row["inject_ns"]), int(rec) if pd.notna(rec) else end))
    return out


def _measure(lab: LabRun, warmup_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Three phases by intended send time: before the first fault (after the warm-up), inside any
    fault window, and after the last recovery (where the backlog and retries of the fault land)."""
    h = lab.history
    t0, t1 = lab.manifest["load_start_ns"], lab.manifest["load_end_ns"]
    # Load window as the ops saw it: first intended send to last answer.
    start = int(h["intended_ns"].min()) + int(warmup_s * 1e9)
    end = int(h["complete_ns"].max())
    windows = _windows(lab) or [(end, end)]
    intended = h["intended_ns"]
    inside = np.zeros(len(h), dtype=bool)
    for a, b in windows:
        inside |= ((intended >= a) & (intended <= b)).to_numpy()
    first, last = min(a for a, _ in windows), max(b for _, b in windows)
    before = ((intended >= start) & (intended < first)).to_numpy() & ~inside
    after = (intended > last).to_numpy() & ~inside
    in_s = sum(max(0, min(b, end) - max(a, start)) for a, b in windows) / 1e9
    m = {
        "fault_windows_s": [round((b - a) / 1e9, 3) for a, b in windows],
        "recovery": lab.summary.get("recovery"),
        "verdict": lab.summary.get("verdict"),
        "before": _side(h[before], max(0, first - start) / 1e9),
        "inside": _side(h[inside], in_s),
        "after": _side(h[after], max(0, end - last) / 1e9),
    }
    series = {
        "per_second": _per_second(h, t0, t1),
        "windows": [((a - t0) / 1e9, (b - t0) / 1e9) for a, b in windows],
    }
    return m, series


def _side(h: pd.DataFrame, seconds: float) -> dict[str, Any]:
    service = (h["complete_ns"] - h["invoke_ns"]).to_numpy()
    response = (h["complete_ns"] - h["intended_ns"]).to_numpy()
    answered = h[h["status"] > 0]
    errors = h[(h["status"] == 0) | (h["status"] >= 500)]
    return {
        "ops": len(h),
        "seconds": round(seconds, 3),
        "ok_rps": round(float((h["type"] == "ok").sum()) / seconds, 1) if seconds > 0 else None,
        "answered_rps": round(len(answered) / seconds, 1) if seconds > 0 else None,
        "p50_ms": pct_ms(response, 50),
        "p99_ms": pct_ms(response, 99),
        "service_p99_ms": pct_ms(service, 99),
        "error_rate": round(len(errors) / len(h), 3) if len(h) else None,
    }


def _per_second(h: pd.DataFrame, t0: int, t1: int) -> dict[str, list[float]]:
    n = max(1, int((t1 - t0) / 1e9) + 1)
    secs = ((h["complete_ns"] - t0) / 1e9).clip(lower=0, upper=n - 1e-9).astype(int).to_numpy()
    ok = np.bincount(secs[(h["type"] == "ok").to_numpy()], minlength=n)
    response_ms = ((h["complete_ns"] - h["intended_ns"]) / 1e6).to_numpy()
    p99 = [
        float(np.percentile(response_ms[secs == s], 99)) if (secs == s).any() else float("nan")
        for s in range(n)
    ]
    return {"ok": ok.tolist(), "p99_ms": p99}


def _plot(ctx: BenchContext, series: dict[str, dict[str, Any]]) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(len(series), 1, figsize=(9, 3.2 * len(series)), squeeze=False)
    for ax, (fault, s) in zip(axes[:, 0], series.items(), strict=True):
        xs = range(len(s["per_second"]["ok"]))
        # Bin k holds answers completed in [k, k+1) s: draw it over that interval, not centred on k.
        ax.bar(xs, s["per_second"]["ok"], width=0.9, align="edge", color="#9ecae1")
        ax.set_ylabel("200 OK per second (bars)")
        twin = ax.twinx()
        mids = [x + 0.5 for x in xs]
        twin.plot(mids, s["per_second"]["p99_ms"], color="#e6550d", marker=".")
        twin.set_ylabel("p99 response ms (line)")
        twin.set_yscale("log")
        for a, b in s["windows"]:
            ax.axvspan(a, max(b, a + 0.1), color="red", alpha=0.15)
        ax.set_title(f"{fault}: throughput and p99 per second (fault window shaded)")
        ax.set_xlabel("seconds into the load")
    return save_plot(fig, ctx.plot_path(NAME))
