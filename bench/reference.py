"""Benchmark `reference`: the reference's k6 stability scenario (docs/REFERENCE.md), scaled, for lock and lua.

experiments/k6-stability.yaml (a closed model: virtual users ramp up, hold, ramp down, 1-3 s of
think time) with its stages scaled to fit the suite's time budget, run once with the lock
strategy (the reference's fix) and once with lua (its "next step") through the real run
orchestration. Reported beside the reference's published figures (~17 req/s, p95 ~ 10 s under
k6 with 2,000 VUs on its Node/Express stack): they are context, not a like-for-like target;
the measured comparison is lua vs lock on this machine in this run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flashlab.bench.context import REPO_ROOT
from flashlab.bench.context import BenchContext
from flashlab.bench.plotting import pyplot
from flashlab.bench.plotting import save_plot
from flashlab.bench.results import now_iso
from flashlab.bench.results import ratio
from flashlab.bench.results import result_line
from flashlab.bench.results import target
from flashlab.bench.runs import LabRun
from flashlab.bench.runs import execute
from flashlab.bench.runs import experiment_from
from flashlab.bench.runs import scratch

NAME = "reference"
EXPERIMENT = REPO_ROOT / "experiments" / "k6-stability.yaml"
REFERENCE_RPS = 17.0
REFERENCE_P95_S = 10.0


def _params(ctx: BenchContext) -> dict[str, Any]:
    if ctx.tiny:
        stages = [
            {"duration_s": 1, "target": 20},
            {"duration_s": 1.5, "target": 20},
            {"duration_s": 0.5, "target": 0},
        ]
        think, duration, shoppers, stock = [0.1, 0.3], 4, 2_000, 100
    else:
        # Half the file's 10 s / 40 s / 10 s, same 500 VUs and think time.
        stages = [
            {"duration_s": 5, "target": 500},
            {"duration_s": 20, "target": 500},
            {"duration_s": 5, "target": 0},
        ]
        think, duration, shoppers, stock = [1.0, 3.0], 33, 100_000, 1_000
    return {
        "experiment": str(EXPERIMENT.relative_to(REPO_ROOT)),
        "stages": stages,
        "vu_think_s": think,
        "duration_s": duration,
        "shoppers_cap": shoppers,
        "stock": stock,
        "strategies": ["lock", "lua"],
        "prometheus": False,
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    started = now_iso()
    p = _params(ctx)
    per: dict[str, dict[str, Any]] = {}
    with scratch() as out:
        for strategy in p["strategies"]:
            ctx.log(f"reference: k6-stability scaled, {strategy}")
            per[strategy] = _measure(execute(_experiment(p, strategy), out))
    ratios: dict[str, Any] = {
        "lua_rps_over_lock": ratio(per["lua"]["rps"], per["lock"]["rps"]),
        "lua_p95_over_lock": ratio(per["lua"]["p95_s"], per["lock"]["p95_s"]),
    }
    for s, m in per.items():
        ratios[f"{s}_rps_over_reference"] = ratio(m["rps"], REFERENCE_RPS)
        ratios[f"{s}_p95_over_reference"] = ratio(m["p95_s"], REFERENCE_P95_S)
    targets = {
        "lock_p95_s_below_reference": target(per["lock"]["p95_s"], "<=", REFERENCE_P95_S),
        "lua_p95_s_below_reference": target(per["lua"]["p95_s"], "<=", REFERENCE_P95_S),
        "lock_oversell": target(per["lock"]["oversell"], "<=", 0),
        "lua_oversell": target(per["lua"]["oversell"], "<=", 0),
    }
    raw = {
        "strategies": per,
        "reference": {"rps": REFERENCE_RPS, "p95_s": REFERENCE_P95_S, "vus": 2000},
    }
    plot = _plot(ctx, per)
    return result_line(ctx, NAME, started, p, raw, ratios, targets, plot)


def _experiment(p: dict[str, Any], strategy: str) -> Any:
    return experiment_from(
        EXPERIMENT,
        {
            "name": f"bench-k6-{strategy}",
            "stack": {"prometheus": p["prometheus"]},
            "product": {"id": f"bench-k6-{strategy}", "stock": p["stock"], "strategy": strategy},
            "scenario": {
                "shoppers": p["shoppers_cap"],
                "stages": p["stages"],
                "vu_think_s": p["vu_think_s"],
                "duration_s": p["duration_s"],
            },
        },
    )


def _measure(run: LabRun) -> dict[str, Any]:
    h = run.history
    answered = h[h["status"] > 0]
    window_s = max((run.manifest["load_end_ns"] - run.manifest["load_start_ns"]) / 1e9, 1e-9)
    response = (h["complete_ns"] - h["intended_ns"]).to_numpy() / 1e9
    oversell = run.summary.get("oversell")
    return {
        "attempts": len(h),
        "answered": len(answered),
        "ok": int((h["type"] == "ok").sum()),
        "busy_409": int((h["code"] == "busy").sum()),
        "conflict_rate": round(float((h["code"] == "busy").sum()) / max(len(answered), 1), 3),
        "window_s": round(window_s, 2),
        "rps": round(len(answered) / window_s, 1),
        "p50_s": round(float(np.percentile(response, 50)), 3) if len(h) else None,
        "p95_s": round(float(np.percentile(response, 95)), 3) if len(h) else None,
        "p99_s": round(float(np.percentile(response, 99)), 3) if len(h) else None,
        "oversell": oversell,
        "verdict": run.summary.get("verdict"),
        "rps_per_second": _per_second(h, run.manifest["load_start_ns"]),
    }


def _per_second(h: Any, t0_ns: int) -> list[int]:
    if h.empty:
        return []
    secs = ((h["complete_ns"] - t0_ns) // 1_000_000_000).clip(lower=0).astype(int)
    return np.bincount(secs.to_numpy()).tolist()


def _plot(ctx: BenchContext, per: dict[str, dict[str, Any]]) -> Path:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for s, m in per.items():
        ax1.plot(m["rps_per_second"], label=f"{s} ({m['rps']} req/s)")
    ax1.axhline(REFERENCE_RPS, color="red", ls="--", lw=1, label="reference ~17 req/s")
    ax1.set_xlabel("seconds into the load")
    ax1.set_ylabel("answers per second")
    ax1.set_title("k6-stability (scaled): throughput")
    ax1.legend(fontsize=8)
    names = list(per)
    ax2.bar(
        names, [per[s]["p95_s"] or 0 for s in names], color=["#fd8d3c", "#3182bd"][: len(names)]
    )
    ax2.axhline(REFERENCE_P95_S, color="red", ls="--", lw=1, label="reference p95 ~10 s")
    ax2.set_ylabel("p95 response time, s (from intended send)")
    ax2.set_yscale("log")
    ax2.set_title("p95 vs the reference")
    ax2.legend(fontsize=8)
    return save_plot(fig, ctx.plot_path(NAME))
