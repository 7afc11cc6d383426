"""Benchmark `stability`: is a verdict reproducible? experiments/lua.yaml run N times per cell.

Cells: engine (inline, ray) x isolation (auto = CPU split on, off = shared CPUs); every trial is
a whole `flashlab run` (its own stack) with the file's seed, the cells taken in rounds. Per cell:
the coefficient of variation (sample stdev / mean) of response p99 and of throughput, how often
the verdict agrees with the cell's most common verdict, generator health and Ray's start-up.
Also the same CVs *host-adjusted* - scaled by the host-speed probe's median unit time beside
the stack (flashlab.lab.hostspeed) - and the CV of that unit time itself: what part of the
variation the host's own CPU speed explains. Ratios: those CVs and agreements, and Ray over
inline (p99 and throughput, medians, isolation on) from the same run.
Targets (what CPU isolation was introduced to reach, docs/METHOD.md): with isolation on, CV <= 5% for p99 and throughput and every verdict the
same; Ray's p99 <= 1.5x inline's and its throughput >= 0.8x inline's.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from flashlab.analysis.stats import stack_unit_us
from flashlab.analysis.stats import worst_host_spread
from flashlab.bench.context import REPO_ROOT
from flashlab.bench.context import BenchContext
from flashlab.bench.plotting import pyplot
from flashlab.bench.plotting import save_plot
from flashlab.bench.results import now_iso
from flashlab.bench.results import ratio
from flashlab.bench.results import result_line
from flashlab.bench.results import target
from flashlab.bench.runs import execute
from flashlab.bench.runs import experiment_from
from flashlab.bench.runs import scratch

NAME = "stability"
EXPERIMENT = REPO_ROOT / "experiments" / "lua.yaml"
ENGINES = ("inline", "ray")
ISOLATION = ("auto", "off")
CV_TARGET = 0.05
RAY_P99_TARGET = 1.5
RAY_RPS_TARGET = 0.8


def _params(ctx: BenchContext) -> dict[str, Any]:
    return {
        "experiment": str(EXPERIMENT.relative_to(REPO_ROOT)),
        "trials": 2 if ctx.tiny else 5,
        # tiny: a harness check (seconds per trial); full: the file's 10,000-shopper spike.
        "shoppers": 300 if ctx.tiny else None,
        "stock": 30 if ctx.tiny else None,
        "engines": list(ENGINES),
        "isolation": list(ISOLATION),
        "engine_workers": 1,  # one actor on the load side: as many as its CPUs on 2 cores
    }


def _changes(p: dict[str, Any], engine: str, isolation: str) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "engine": {"kind": engine, "workers": p["engine_workers"]},
        "isolation": {"mode": isolation},
    }
    if p["shoppers"]:
        changes["scenario"] = {"shoppers": p["shoppers"]}
        changes["product"] = {"stock": p["stock"]}
    return changes


def _trial(lab: Any) -> dict[str, Any]:
    s = lab.summary
    worst_host = worst_host_spread(s.get("host_speed"))  # (side, spread) or None
    return {
        "verdict": s["verdict"],
        "p99_ms": (s.get("latency_ms") or {}).get("p99"),
        "throughput_rps": s.get("throughput_rps"),
        "sold": s.get("sold"),
        "generator_healthy": (s.get("generator") or {}).get("healthy"),
        "lag_ms_p99": (s.get("generator") or {}).get("lag_ms_p99"),
        "isolation_applied": (s.get("isolation") or {}).get("applied"),
        "startup_s": (lab.manifest.get("engine") or {}).get("startup_s"),
        "host_spread": worst_host[1] if worst_host else None,
        "stack_unit_us": stack_unit_us(s.get("host_speed")),
    }


def cv(values: list[float | None]) -> float | None:
    """Sample coefficient of variation; None with fewer than two values or a zero mean."""
    xs = [float(v) for v in values if v is not None]
    if len(xs) < 2 or statistics.fmean(xs) == 0:
        return None
    return round(statistics.stdev(xs) / statistics.fmean(xs), 4)


def agreement(verdicts: list[str]) -> float | None:
    """Share of trials with the cell's most common verdict (1.0 = all the same)."""
    if not verdicts:
        return None
    return round(Counter(verdicts).most_common(1)[0][1] / len(verdicts), 3)


def _cell(trials: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        xs = [t[key] for t in trials if t[key] is not None]
        return round(statistics.median(xs), 3) if xs else None

    def host_adjusted(key: str, sign: int) -> list[float | None]:
        # A host running x times slower takes x times longer per request: p99 / unit time and
        # throughput * unit time remove that first-order effect, leaving what the host did not do.
        return [
            t[key] * t["stack_unit_us"] ** sign if t[key] and t["stack_unit_us"] else None
            for t in trials
        ]

    verdicts = [t["verdict"] for t in trials]
    return {
        "trials": trials,
        "verdicts": dict(Counter(verdicts)),
        "verdict_agreement": agreement(verdicts),
        "p99_ms_median": median("p99_ms"),
        "p99_cv": cv([t["p99_ms"] for t in trials]),
        "throughput_rps_median": median("throughput_rps"),
        "throughput_cv": cv([t["throughput_rps"] for t in trials]),
        "p99_cv_host_adjusted": cv(host_adjusted("p99_ms", -1)),
        "throughput_cv_host_adjusted": cv(host_adjusted("throughput_rps", 1)),
        "stack_unit_us_cv": cv([t["stack_unit_us"] for t in trials]),
        "generator_healthy": sum(bool(t["generator_healthy"]) for t in trials),
        "startup_s_median": median("startup_s"),
        "host_spread_median": median("host_spread"),
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    started = now_iso()
    p = _params(ctx)
    keys = [(engine, iso) for engine in p["engines"] for iso in p["isolation"]]
    trials: dict[str, list[dict[str, Any]]] = {f"{e}-{i}": [] for e, i in keys}
    with scratch() as out:
        # Round-robin over the cells, not cell after cell: the host's speed drifts over minutes,
        # so each round puts every cell under the same conditions (a side-by-side comparison).
        for i in range(p["trials"]):
            for engine, isolation in keys:
                key = f"{engine}-{isolation}"
                ctx.log(f"stability: round {i + 1}/{p['trials']} {key}")
                exp = experiment_from(EXPERIMENT, _changes(p, engine, isolation))
                trials[key].append(_trial(execute(exp, out)))
    cells = {key: _cell(ts) for key, ts in trials.items()}
    ratios = _ratios(cells)
    targets = _targets(cells, ratios)
    return result_line(ctx, NAME, started, p, {"cells": cells}, ratios, targets, _plot(ctx, cells))


def _ratios(cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, c in cells.items():
        out[f"{key}_p99_cv"] = c["p99_cv"]
        out[f"{key}_throughput_cv"] = c["throughput_cv"]
        out[f"{key}_verdict_agreement"] = c["verdict_agreement"]
        out[f"{key}_p99_cv_host_adjusted"] = c["p99_cv_host_adjusted"]
        out[f"{key}_throughput_cv_host_adjusted"] = c["throughput_cv_host_adjusted"]
        out[f"{key}_host_speed_cv"] = c["stack_unit_us_cv"]
    for iso in ISOLATION:
        ray, inline = cells.get(f"ray-{iso}"), cells.get(f"inline-{iso}")
        if ray and inline:
            out[f"ray_over_inline_p99_{iso}"] = ratio(ray["p99_ms_median"], inline["p99_ms_median"])
            out[f"ray_over_inline_throughput_{iso}"] = ratio(
                ray["throughput_rps_median"], inline["throughput_rps_median"]
            )
    return out


def _targets(cells: dict[str, dict[str, Any]], ratios: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for engine in ENGINES:
        c = cells[f"{engine}-auto"]
        out[f"{engine}_isolated_p99_cv"] = target(c["p99_cv"], "<=", CV_TARGET)
        out[f"{engine}_isolated_throughput_cv"] = target(c["throughput_cv"], "<=", CV_TARGET)
        out[f"{engine}_isolated_verdict_agreement"] = target(c["verdict_agreement"], ">=", 1.0)
    out["ray_over_inline_p99_isolated"] = target(
        ratios.get("ray_over_inline_p99_auto"), "<=", RAY_P99_TARGET
    )
    out["ray_over_inline_throughput_isolated"] = target(
        ratios.get("ray_over_inline_throughput_auto"), ">=", RAY_RPS_TARGET
    )
    return out


def _plot(ctx: BenchContext, cells: dict[str, dict[str, Any]]) -> Path:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(cells)
    for i, key in enumerate(names):
        trials = cells[key]["trials"]
        colours = ["#31a354" if t["verdict"] == "pass" else "#de2d26" for t in trials]
        ax1.scatter([i] * len(trials), [t["p99_ms"] or 0 for t in trials], c=colours, s=18)
        ax2.scatter([i] * len(trials), [t["throughput_rps"] or 0 for t in trials], c=colours, s=18)
    for ax, label in ((ax1, "response p99, ms"), (ax2, "throughput, req/s")):
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.set_ylabel(label)
    ax1.set_title("p99 per trial (green pass, red otherwise)")
    ax2.set_title("throughput per trial")
    return save_plot(fig, ctx.plot_path(NAME))
