"""Benchmark `scale`: how the simulator and the stack grow from 1,000 to 50,000 spike shoppers.

Spike arrivals (everyone within 1 s), stock = 10% of the shoppers, lua, the best engine from the
latest `simulator` result (process when there is none), default behaviour profiles. Per size:
wall time, time to sell-out, p99 (service and response), and the simulator's peak RSS summed over
its process tree (psutil, sampled). Growth ratios are relative to the smallest size.
Targets: 10,000 shoppers in under 10 s wall and under 1 GiB RSS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flashlab.bench.context import BenchContext
from flashlab.bench.engine_runs import sale_run
from flashlab.bench.plotting import pyplot
from flashlab.bench.plotting import save_plot
from flashlab.bench.results import now_iso
from flashlab.bench.results import ratio
from flashlab.bench.results import result_line
from flashlab.bench.results import target
from flashlab.bench.stack import local_stack
from flashlab.simulator.scenario import Scenario
from flashlab.simulator.scenario import Spike

NAME = "scale"
PRODUCT = "bench-scale"
TARGET_SHOPPERS = 10_000
WALL_TARGET_S = 10.0
RSS_TARGET_MIB = 1024.0


def _params(ctx: BenchContext) -> dict[str, Any]:
    # The simulator benchmark names tools "<engine>[-<client>]", e.g. "inline-raw".
    engine, _, client = best_engine(ctx.results_path).partition("-")
    return {
        "shoppers": [100, 300] if ctx.tiny else [1_000, 10_000, 50_000],
        "stock_fraction": 0.1,
        "strategy": "lua",
        "arrival": "spike 1 s",
        "engine": engine,
        "client": client or "aiohttp",
        "engine_workers": 1 if engine == "inline" else 2,
        "connections_per_worker": 256,
        "seed": 5,
    }


def best_engine(results_path: Path) -> str:
    """The best tool ("<engine>[-<client>]") named by the latest simulator line here (else process)."""
    best = "process"
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if data.get("bench") == "simulator":
                best = data.get("ratios", {}).get("best_engine", best)
    return best


def run(ctx: BenchContext) -> dict[str, Any]:
    started = now_iso()
    p = _params(ctx)
    sizes: dict[str, dict[str, Any]] = {}
    with local_stack(workers=2) as (_platform, info):
        for n in p["shoppers"]:
            ctx.log(f"scale: {n} spike shoppers on {p['engine']}")
            sizes[str(n)] = _one(info, p, n)
    ratios = _growth(p, sizes)
    at = str(TARGET_SHOPPERS) if str(TARGET_SHOPPERS) in sizes else str(p["shoppers"][-1])
    targets = {
        f"wall_s_at_{at}": target(sizes[at]["wall_s"], "<=", WALL_TARGET_S),
        f"peak_rss_mib_at_{at}": target(sizes[at]["peak_rss_mib"], "<=", RSS_TARGET_MIB),
    }
    plot = _plot(ctx, sizes)
    return result_line(ctx, NAME, started, p, {"sizes": sizes}, ratios, targets, plot)


def _one(info: Any, p: dict[str, Any], n: int) -> dict[str, Any]:
    stock = max(1, int(n * p["stock_fraction"]))
    scenario = Scenario(
        shoppers=n, model="open", arrival=Spike(window_s=1.0), duration_s=120, request_timeout_s=5
    )
    run = sale_run(
        info,
        p,
        PRODUCT,
        stock,
        scenario,
        workers=p["engine_workers"],
        connections=p["connections_per_worker"],
        run_id=f"bench-scale-{n}",
        timeout_s=scenario.duration_s + 120,
    )
    stats = run.stats()
    h = run.history
    t0 = run.result["t0_ns"]
    sold = h[(h["type"] == "ok") & (h["remaining"] == 0)]
    sell_out = round((float(sold["complete_ns"].min()) - t0) / 1e9, 3) if len(sold) else None
    return {
        "shoppers": n,
        "stock": stock,
        "attempts": stats["requests"],
        "ok": stats["ok"],
        "wall_s": round(run.result["wall_s"], 3),
        "sell_out_s": sell_out,
        "service_p99_ms": stats["service_p99_ms"],
        "response_p99_ms": stats["response_p99_ms"],
        "peak_rss_mib": run.tool.peak_rss_mib,
        "window_cpu_s": round(run.window_cpu_s, 3),
        "codes": stats["codes"],
    }


def _growth(p: dict[str, Any], sizes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    base = sizes[str(p["shoppers"][0])]
    out: dict[str, Any] = {}
    for key, s in list(sizes.items())[1:]:
        out[f"shoppers_x{key}/{base['shoppers']}"] = ratio(s["shoppers"], base["shoppers"], 1)
        out[f"wall_x{key}/{base['shoppers']}"] = ratio(s["wall_s"], base["wall_s"])
        out[f"rss_x{key}/{base['shoppers']}"] = ratio(s["peak_rss_mib"], base["peak_rss_mib"])
        out[f"p99_x{key}/{base['shoppers']}"] = ratio(s["response_p99_ms"], base["response_p99_ms"])
    return out


def _plot(ctx: BenchContext, sizes: dict[str, dict[str, Any]]) -> Path:
    plt = pyplot()
    xs = [s["shoppers"] for s in sizes.values()]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(xs, [s["wall_s"] for s in sizes.values()], "o-", label="wall")
    ax1.plot(xs, [s["sell_out_s"] or float("nan") for s in sizes.values()], "s-", label="sell-out")
    _frame(ax1, WALL_TARGET_S, "10 s target (10k)", "seconds", "Wall time and time to sell-out")
    ax2.plot(xs, [s["peak_rss_mib"] for s in sizes.values()], "o-", color="#756bb1")
    _frame(ax2, RSS_TARGET_MIB, "1 GiB target (10k)", "simulator peak RSS, MiB", "Simulator memory")
    return save_plot(fig, ctx.plot_path(NAME))


def _frame(ax: Any, target: float, target_label: str, ylabel: str, title: str) -> None:
    """Both panels' frame: the 10k target as a red line, shoppers on a log axis, labels."""
    ax.axhline(target, color="red", ls="--", lw=1, label=target_label)
    ax.set_xscale("log")
    ax.set_xlabel("spike shoppers")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title)
