"""Benchmark `ceiling`: the stack's purchase rate against its own ceiling, by connections and by strategy.

One stack, pinned as the lab pins it (flashlab.core.isolation, mode auto: the stack on its CPUs, wrk
and the lab's own client on the load CPUs), three parts measured side by side in one run:

1. Connection sweep, 16 to 512 connections and back down (a cell is the mean of both passes):
   wrk GET /healthz through nginx (the cheapest request the stack answers), wrk POST buy (lua, a
   fresh `x-user-id` per request, stock 10,000,000) and the lab's closed loop
   (flashlab.simulator.closedloop, the capacity probe's client) on the same path. The best wrk
   purchase rate marks the knee; `generator_efficiency` is the closed loop over
   wrk at the lab's own connection count (`connections: auto`), measured W L L W so drift cancels.
2. Strategies at that connection count: healthz, then each strategy's purchases, healthz between
   every two, each strategy divided by the mean of the ceilings right before and after it.
3. The 10,000-shopper lua spike (experiments/lua.yaml as shipped, run by the lab on this same
   stack), its throughput over wrk's purchase rate at the knee measured right before and right
   after it (drift cancels as in part 2), and over the sweep's best cell.
At full size py-spy then samples one API worker during an extra lua run (not counted in the
ratios) and the hottest frames and a per-library breakdown go into the result line.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from flashlab.bench.context import REPO_ROOT
from flashlab.bench.context import BenchContext
from flashlab.bench.measured import ToolError
from flashlab.bench.measured import run_tool
from flashlab.bench.plotting import pyplot
from flashlab.bench.plotting import save_plot
from flashlab.bench.results import now_iso
from flashlab.bench.results import ratio
from flashlab.bench.results import result_line
from flashlab.bench.results import target
from flashlab.bench.runs import execute
from flashlab.bench.runs import experiment_from
from flashlab.bench.runs import scratch
from flashlab.bench.stack import buy_body
from flashlab.bench.stack import local_stack
from flashlab.bench.stack import reset_product
from flashlab.bench.wrk import WrkResult
from flashlab.bench.wrk import wrk
from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import Strategy
from flashlab.core.isolation import Isolation
from flashlab.core.isolation import pinned
from flashlab.core.isolation import resolve
from flashlab.lab.experiment import KNEE_CONNECTIONS_PER_API_WORKER
from flashlab.simulator.closedloop import closed_loop
from flashlab.simulator.closedloop import purchase_loop

NAME = "ceiling"
PRODUCT = "bench-ceiling"
UNLIMITED = 10_000_000
LUA_TARGET = 0.7
EFFICIENCY_TARGET = 0.9
SPIKE_TARGET = 0.9
SPIKE_EXPERIMENT = REPO_ROOT / "experiments" / "lua.yaml"


def _params(ctx: BenchContext) -> dict[str, Any]:
    workers = 2
    return {
        "workers": workers,
        "isolation": "auto",
        "sweep_connections": [16, 64] if ctx.tiny else [16, 32, 64, 128, 256, 512],
        "sweep_s": 0.5 if ctx.tiny else 2.0,
        "lab_connections": KNEE_CONNECTIONS_PER_API_WORKER * workers,  # `connections: auto`
        "duration_s": 1 if ctx.tiny else 5,
        "stock": UNLIMITED,
        "strategies": [s.value for s in Strategy],
        "spike": {"experiment": "experiments/lua.yaml", "shoppers": 1000 if ctx.tiny else None},
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    started = now_iso()
    p = _params(ctx)
    iso = resolve(p["isolation"])
    raw: dict[str, Any] = {"isolation": iso.to_dict(), "connections": p["lab_connections"]}
    raw.update(strategies={}, healthz=[])
    with local_stack(workers=p["workers"], cpus=iso.stack) as (platform, info), pinned(iso.load):
        raw["sweep"] = _sweep(ctx, info, p, iso)
        raw["efficiency"] = _efficiency(ctx, info, p, iso)
        common = _wrk_options(iso, p["lab_connections"], p["duration_s"])
        _strategies(ctx, info, p, common, raw)
        raw["spike"] = _spike(ctx, info, p, iso, _knee(raw["sweep"]))
        # Profile at full size even when met: where the worker's time goes is what decides
        # what to cut next.
        if not ctx.tiny:
            ctx.log("ceiling: profiling one API worker with py-spy during a lua run")
            raw["profile"] = _profile(platform, info, p, common)
    ratios = _ratios(raw)
    targets = {
        "lua_purchase_over_ceiling": target(ratios.get("lua"), ">=", LUA_TARGET),
        "generator_efficiency": target(ratios.get("generator_efficiency"), ">=", EFFICIENCY_TARGET),
        "spike_over_knee_wrk": target(ratios.get("spike_over_knee_wrk"), ">=", SPIKE_TARGET),
    }
    plot = _plot(ctx, raw, ratios)
    return result_line(ctx, NAME, started, p, raw, ratios, targets, plot)


def _wrk_options(iso: Isolation, connections: int, duration_s: float) -> dict[str, Any]:
    # wrk inherits the load CPUs (pinned): one thread per CPU it may use.
    threads = max(1, len(iso.load or ())) if iso.applied else 2
    return {"threads": threads, "connections": connections, "duration_s": duration_s}


def _wrk_buy(info: Any, prefix: str, options: dict[str, Any]) -> WrkResult:
    """wrk POSTing purchases of PRODUCT, a fresh `x-user-id` per request (`prefix` keeps them
    apart from every other wrk run on this stack)."""
    return wrk(
        info.base_url + BUY_PATH, method="POST", body=buy_body(PRODUCT), prefix=prefix, **options
    )


def _closed_loop_buy(info: Any, connections: int, duration_s: float, prefix: str) -> float:
    """The lab's own closed loop on the purchase path (the capacity probe's client): 2xx/s."""
    spec = purchase_loop(
        info.base_url, PRODUCT, connections, duration_s, max_requests=500_000, user_prefix=prefix
    )
    return round(closed_loop(spec).ok_rps or 0.0, 1)


SWEEP_RATES = ("healthz_rps", "wrk_buy_rps", "closed_loop_buy_rps")


def _sweep(ctx: BenchContext, info: Any, p: dict[str, Any], iso: Isolation) -> list[dict[str, Any]]:
    """healthz, wrk buy and the closed loop's buy at each connection count, in two passes (up,
    then down, so drift hits every count alike); each cell keeps both passes and their mean."""
    reset_product(info, PRODUCT, UNLIMITED, "lua")
    counts = p["sweep_connections"]
    passes: dict[int, list[dict[str, Any]]] = {c: [] for c in counts}
    for n, connections in enumerate([*counts, *reversed(counts)]):
        ctx.log(f"ceiling: {connections} connections: healthz, wrk buy, closed-loop buy")
        options = _wrk_options(iso, connections, p["sweep_s"])
        health = wrk(f"{info.base_url}/healthz", **options)
        buy = _wrk_buy(info, f"s{n}-{connections}", options)
        loop_rps = _closed_loop_buy(info, connections, p["sweep_s"], f"sweep{n}-{connections}")
        passes[connections].append(
            {
                "healthz_rps": round(health.rps, 1),
                "wrk_buy_rps": round(buy.ok_rps, 1),
                "wrk_buy_p99_ms": round(buy.p99_ms, 1),
                "wrk_buy_non2xx": buy.stats["requests"] - buy.stats["s2xx"],
                "closed_loop_buy_rps": loop_rps,
            }
        )
    return [_sweep_cell(c, passes[c]) for c in counts]


def _sweep_cell(connections: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    cell: dict[str, Any] = {"connections": connections, "passes": runs}
    for key in (*SWEEP_RATES, "wrk_buy_p99_ms"):
        cell[key] = round(sum(r[key] for r in runs) / len(runs), 1)
    cell["wrk_buy_non2xx"] = sum(r["wrk_buy_non2xx"] for r in runs)
    return cell


def _efficiency(ctx: BenchContext, info: Any, p: dict[str, Any], iso: Isolation) -> dict[str, Any]:
    """wrk, closed loop, closed loop, wrk at the lab's connection count: drift hits both alike."""
    connections = p["lab_connections"]
    ctx.log(f"ceiling: generator efficiency at {connections} connections (W L L W)")
    options = _wrk_options(iso, connections, p["sweep_s"])

    def loop(i: int) -> float:
        return _closed_loop_buy(info, connections, p["sweep_s"], f"eff{i}")

    first = _wrk_buy(info, "e0", options).ok_rps
    loops = [loop(1), loop(2)]
    last = _wrk_buy(info, "e3", options).ok_rps
    return {
        "connections": connections,
        "wrk": [round(first, 1), round(last, 1)],
        "closed_loop": loops,
    }


def _strategies(
    ctx: BenchContext, info: Any, p: dict[str, Any], common: dict[str, Any], raw: dict[str, Any]
) -> None:
    health = f"{info.base_url}/healthz"
    # H, S1, H, S2, H, ...: each strategy is judged against the ceiling measured right
    # before and right after it, so the machine's drift cancels pair by pair.
    ctx.log("ceiling: wrk GET /healthz")
    raw["healthz"].append(wrk(health, **common).brief())
    for strategy in p["strategies"]:
        reset_product(info, PRODUCT, UNLIMITED, strategy)
        ctx.log(f"ceiling: wrk POST buy, strategy {strategy}")
        res = _wrk_buy(info, f"c{strategy}", common)
        ctx.log("ceiling: wrk GET /healthz")
        raw["healthz"].append(wrk(health, **common).brief())
        local = (raw["healthz"][-2]["rps"] + raw["healthz"][-1]["rps"]) / 2
        raw["strategies"][strategy] = {**res.brief(), "ceiling_rps": round(local, 1)}
    ceiling = sum(h["rps"] for h in raw["healthz"]) / len(raw["healthz"])
    raw["ceiling_rps"] = round(ceiling, 1)


def _knee(sweep: list[dict[str, Any]]) -> dict[str, Any]:
    """The sweep's cell with the best wrk purchase rate."""
    return max(sweep, key=lambda cell: cell["wrk_buy_rps"])


def _spike(
    ctx: BenchContext, info: Any, p: dict[str, Any], iso: Isolation, knee: dict[str, Any]
) -> dict[str, Any]:
    """wrk at the knee, the shipped lua spike run by the lab on this stack, wrk at the knee."""
    spec = p["spike"]
    changes: dict[str, Any] = {}  # lua.yaml's relative clauses keep its capacity probe on
    if spec["shoppers"]:
        # the tiny spike stays above capacity too: 1,000 shoppers within 0.1 s
        changes["scenario"] = {"shoppers": spec["shoppers"], "arrival": {"window_s": 0.1}}
        changes["product"] = {"stock": spec["shoppers"] // 10}
    exp = experiment_from(SPIKE_EXPERIMENT, changes)
    options = _wrk_options(iso, knee["connections"], p["sweep_s"])
    ctx.log(f"ceiling: wrk buy at the knee ({knee['connections']} connections), spike, wrk")
    reset_product(info, PRODUCT, UNLIMITED, "lua")
    before = _wrk_buy(info, "kbefore", options)
    with scratch() as out:
        lab = execute(exp, out, on=info)
    after = _wrk_buy(info, "kafter", options)
    knee_wrk = [round(before.ok_rps, 1), round(after.ok_rps, 1)]
    summary = lab.summary
    capacity = summary.get("capacity") or {}
    return {
        "shoppers": exp.scenario.shoppers,
        "connections": exp.connections_per_worker(),
        "knee_connections": knee["connections"],
        "knee_wrk_buy_rps": knee_wrk,
        "verdict": summary.get("verdict"),
        "exit_code": lab.exit_code,
        "throughput_rps": summary.get("throughput_rps"),
        "p99_ms": (summary.get("latency_ms") or {}).get("p99"),
        "sold": summary.get("sold"),
        "oversell": summary.get("oversell"),
        "generator_stalled_s": summary.get("generator_stalled_s"),
        "capacity_buy_rps": capacity.get("buy_rps"),
        "capacity_wrk_buy_rps": capacity.get("wrk_buy_rps"),
        "capacity_gateway_rps": capacity.get("gateway_rps"),
    }


def _ratios(raw: dict[str, Any]) -> dict[str, Any]:
    """Answered purchases per second over the adjacent ceiling; `<s>_ok` counts only 200s (lock
    answers many 409 busy, which are cheaper than a sale). Then the sweep, the generator and the
    spike."""
    out: dict[str, Any] = {}
    for strategy, r in raw["strategies"].items():
        out[strategy] = ratio(r["rps"], r["ceiling_rps"])
        out[f"{strategy}_ok"] = ratio(r["ok_rps"], r["ceiling_rps"])
    spread = [h["rps"] for h in raw["healthz"]]
    out["ceiling_min_over_max"] = ratio(min(spread), max(spread))  # how steady the machine was
    sweep = raw["sweep"]
    best = _knee(sweep)
    out["knee_connections"] = best["connections"]
    out["best_wrk_buy_rps"] = best["wrk_buy_rps"]
    for cell in sweep:
        c = cell["connections"]
        out[f"wrk_buy_at_{c}_over_best"] = ratio(cell["wrk_buy_rps"], best["wrk_buy_rps"])
        out[f"closed_loop_over_wrk_at_{c}"] = ratio(
            cell["closed_loop_buy_rps"], cell["wrk_buy_rps"]
        )
    eff = raw["efficiency"]
    out["generator_efficiency"] = ratio(sum(eff["closed_loop"]), sum(eff["wrk"]))
    spike = raw["spike"]
    knee_wrk = sum(spike["knee_wrk_buy_rps"]) / len(spike["knee_wrk_buy_rps"])
    out["spike_over_knee_wrk"] = ratio(spike["throughput_rps"], knee_wrk)
    out["spike_over_best_wrk"] = ratio(spike["throughput_rps"], best["wrk_buy_rps"])
    out["spike_over_its_wrk_probe"] = ratio(spike["throughput_rps"], spike["capacity_wrk_buy_rps"])
    return out


def _plot(ctx: BenchContext, raw: dict[str, Any], ratios: dict[str, Any]) -> Path:
    plt = pyplot()
    fig, (ax0, ax1, ax2) = plt.subplots(
        1, 3, figsize=(15, 4), gridspec_kw={"width_ratios": [3, 3, 2]}
    )
    _plot_sweep(ax0, raw)
    names = list(raw["strategies"])
    ax1.bar(names, [ratios[n] or 0 for n in names], color="#9ecae1", label="all answers")
    ax1.bar(names, [ratios[f"{n}_ok"] or 0 for n in names], color="#3182bd", label="200 OK only")
    for i, name in enumerate(names):
        r = raw["strategies"][name]
        ax1.text(
            i,
            ratios[name] or 0,
            f"{ratios[name]:.2f}\n{r['rps']:.0f}/s",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax1.axhline(LUA_TARGET, color="red", ls="--", lw=1, label=f"lua target {LUA_TARGET}")
    ax1.set_ylim(0, 1.2 * max([LUA_TARGET, *(ratios[n] or 0 for n in names)]))  # labels fit
    ax1.set_ylabel("purchase req/s / adjacent /healthz req/s")
    ax1.set_title(f"Purchases vs the stack's own ceiling (wrk, {raw['connections']} connections)")
    ax1.legend(fontsize=8)
    ax2.plot([h["rps"] for h in raw["healthz"]], "o-", color="#636363")
    ax2.set_xticks(
        range(len(raw["healthz"])),
        ["start", *(f"after {n}" for n in names)],
        rotation=30,
        fontsize=8,
    )
    ax2.set_ylabel("/healthz req/s")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Ceiling between strategies (drift)")
    return save_plot(fig, ctx.plot_path(NAME))


def _plot_sweep(ax: Any, raw: dict[str, Any]) -> None:
    sweep = raw["sweep"]
    xs = [cell["connections"] for cell in sweep]
    for key, label, style in (
        ("healthz_rps", "wrk /healthz", "s--"),
        ("wrk_buy_rps", "wrk buy (lua)", "o-"),
        ("closed_loop_buy_rps", "lab closed loop buy", "^-"),
    ):
        ax.plot(xs, [cell[key] for cell in sweep], style, label=label)
    spike = raw.get("spike") or {}
    if spike.get("throughput_rps"):
        ax.axhline(
            spike["throughput_rps"], color="#e6550d", lw=1, ls=":",
            label=f"lab spike ({spike['shoppers']:,} shoppers, {spike['connections']} conns)",
        )  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("concurrent connections")
    ax.set_ylabel("answered req/s")
    ax.set_ylim(bottom=0)
    ax.set_title("Rate by connections (stack and client pinned apart)")
    ax.legend(fontsize=8)


# ---- profiling ----------------------------------------------------------------------------------


def _profile(platform: Any, info: Any, p: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    """py-spy one API worker while wrk drives lua purchases; returns the hottest frames."""
    pyspy = shutil.which("py-spy") or str(Path(_python_bin()) / "py-spy")
    if not Path(pyspy).exists():
        return {"error": "py-spy not installed (pip install py-spy)"}
    worker = next(c for c in platform.components() if c.name == "api-0")
    reset_product(info, PRODUCT, UNLIMITED, "lua")
    with tempfile.TemporaryDirectory(prefix="bench-pyspy-") as tmp:
        out = Path(tmp) / "api-0.folded"
        argv = [pyspy, "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(out)]
        argv += ["-d", str(p["duration_s"] + 1), "-p", str(worker.pid)]

        box: dict[str, Any] = {}

        def spy() -> None:
            try:
                box["run"] = run_tool(argv, name="py-spy", timeout_s=p["duration_s"] + 30)
            except ToolError as exc:
                box["error"] = str(exc)

        thread = threading.Thread(target=spy, daemon=True)
        thread.start()
        wrk_res = _wrk_buy(info, "prof", common)
        thread.join(timeout=p["duration_s"] + 40)
        if "error" in box or not out.exists():
            return {"error": box.get("error", "py-spy wrote no profile")}
        folded = out.read_text()
    summary = summarize_folded(folded)
    summary["wrk_rps_while_profiled"] = round(wrk_res.rps, 1)
    return summary


def _python_bin() -> str:
    return str(Path(sys.executable).parent)


# Buckets for "where does a purchase's time go", matched against the frames of a stack, first hit
# wins (ordered from most to least specific).
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("redis client (redis-py/hiredis)", ("redis/", "hiredis")),
    ("pydantic validation/serialisation", ("pydantic",)),
    ("json encode/decode", ("json/", "orjson")),
    ("prometheus metrics", ("prometheus_client",)),
    ("fastapi routing/deps", ("fastapi/",)),
    ("starlette (request/response/middleware)", ("starlette/",)),
    ("uvicorn http protocol", ("uvicorn/", "httptools")),
    ("asyncio/uvloop event loop", ("asyncio/", "uvloop")),
    ("flashlab app code", ("system/",)),
    # client side (the simulator profile)
    ("aiohttp client", ("aiohttp/", "yarl/", "multidict")),
    ("pyarrow (history batches)", ("pyarrow",)),
    ("flashlab simulator code", ("simulator/",)),
)


def summarize_folded(folded: str, top: int = 12) -> dict[str, Any]:
    """Self time per frame and time per bucket from py-spy's folded ('raw') output.

    py-spy leaves idle samples out by default (no --idle), so shares are of busy time."""
    self_time: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        self_time[frames[-1]] += count
        buckets[_bucket(frames)] += count
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "top_self": [
            {"frame": frame, "share": round(n / total, 3)}
            for frame, n in self_time.most_common(top)
        ],
        "buckets": {name: round(n / total, 3) for name, n in buckets.most_common()},
    }


def _bucket(frames: list[str]) -> str:
    # Attribute a sample to the innermost frame that names a known library.
    for frame in reversed(frames):
        for name, needles in BUCKETS:
            if any(n in frame for n in needles):
                return name
    return "other (interpreter, idle)"
