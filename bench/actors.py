"""Benchmark `actors`: Ray shopper actors vs throughput (1, 2, 4 actors on one local Ray).

Per actor count: the same seeded open-model Poisson stream (a rate above what one actor was
measured to sustain here, so the achieved rate shows the actors' ceiling), lua, the raw client,
stock = 10% of the shoppers. Recorded: achieved answered rate, rate per actor, Ray's start-up
(EngineResult.startup_s: ray.init + actors ready, outside the load window), the peak RSS of the
whole tree (driver, Ray's daemons, actors) and its CPU during the load window. Ratios are relative
to one actor. docs/SCALE.md turns these figures into capacity planning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flashlab.bench.context import BenchContext
from flashlab.bench.engine_runs import sale_run
from flashlab.bench.plotting import pyplot
from flashlab.bench.plotting import save_plot
from flashlab.bench.results import now_iso
from flashlab.bench.results import ratio
from flashlab.bench.results import result_line
from flashlab.bench.stack import local_stack
from flashlab.simulator.scenario import Poisson
from flashlab.simulator.scenario import Scenario

NAME = "actors"
PRODUCT = "bench-actors"


def _params(ctx: BenchContext) -> dict[str, Any]:
    return {
        "actors": [1, 2] if ctx.tiny else [1, 2, 4],
        "shoppers": 100 if ctx.tiny else 6_000,
        "rate_per_s": 200 if ctx.tiny else 3_000,
        "stock_fraction": 0.1,
        "strategy": "lua",
        "engine": "ray",
        "client": "raw",
        "connections_per_actor": 128,
        "stack_workers": 2,
        "seed": 9,
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    started = now_iso()
    p = _params(ctx)
    counts: dict[str, dict[str, Any]] = {}
    with local_stack(workers=p["stack_workers"]) as (_platform, info):
        for n in p["actors"]:
            ctx.log(f"actors: {p['shoppers']} shoppers on {n} Ray actor(s)")
            counts[str(n)] = _one(info, p, n)
    one = counts[str(p["actors"][0])]
    ratios: dict[str, Any] = {}
    for key, c in list(counts.items())[1:]:
        ratios[f"rate_x{key}/1"] = ratio(c["rate_per_s"], one["rate_per_s"])
        ratios[f"startup_x{key}/1"] = ratio(c["startup_s"], one["startup_s"])
        ratios[f"rss_x{key}/1"] = ratio(c["peak_rss_mib"], one["peak_rss_mib"])
    ratios["one_actor_rate_per_s"] = one["rate_per_s"]
    return result_line(ctx, NAME, started, p, {"actors": counts}, ratios, {}, _plot(ctx, counts))


def _one(info: Any, p: dict[str, Any], actors: int) -> dict[str, Any]:
    stock = max(1, int(p["shoppers"] * p["stock_fraction"]))
    scenario = Scenario(
        shoppers=p["shoppers"],
        model="open",
        arrival=Poisson(rate_per_s=p["rate_per_s"]),
        duration_s=120,
        request_timeout_s=5,
    )
    run = sale_run(
        info,
        p,
        PRODUCT,
        stock,
        scenario,
        workers=actors,
        connections=p["connections_per_actor"],
        run_id=f"bench-actors-{actors}",
        timeout_s=scenario.duration_s + 240,
    )
    stats = run.stats()
    rate = stats.get("rate_per_s")
    return {
        "actors": actors,
        "shoppers": p["shoppers"],
        "attempts": stats["requests"],
        "ok": stats.get("ok", 0),
        "rate_per_s": rate,
        "rate_per_actor": round(rate / actors, 1) if rate else None,
        "response_p99_ms": stats.get("response_p99_ms"),
        "startup_s": run.result.get("startup_s"),
        "wall_s": round(run.result["wall_s"], 3),
        "peak_rss_mib": run.tool.peak_rss_mib,
        "window_cpu_s": round(run.window_cpu_s, 3),
        "lost_workers": run.result.get("lost_workers", []),
    }


def _plot(ctx: BenchContext, counts: dict[str, dict[str, Any]]) -> Path:
    plt = pyplot()
    xs = [c["actors"] for c in counts.values()]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(xs, [c["rate_per_s"] or 0 for c in counts.values()], "o-", label="answered req/s")
    ax1.set_xlabel("Ray actors")
    ax1.set_ylabel("requests per second")
    ax1.set_xticks(xs)
    ax1.legend(fontsize=8)
    ax1.set_title("Throughput vs actors")
    ax2.bar([str(x) for x in xs], [c["startup_s"] or 0 for c in counts.values()])
    ax2.set_xlabel("Ray actors")
    ax2.set_ylabel("start-up, s (ray.init + actors ready)")
    ax2.set_title("Ray's fixed cost")
    return save_plot(fig, ctx.plot_path(NAME))
