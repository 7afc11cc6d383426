"""The capacity probe: how fast this run's stack answers a trivial request and a purchase, before the load.

A lab controls both ends, so it can measure the machine in the same run and judge timing relative
to it (flashlab.analysis.capacity; docs/METHOD.md, "Portable verdicts"). With the stack up on its
CPU split and the generator pinned to the load CPUs as the engine will be, three closed loops at
the experiment's connection count, each `capacity.probe_s` long (the first WARMUP_FRACTION of it
not counted) and bounded in requests (MAX_REQUESTS), run with the lab's own raw client:

    gateway   GET /healthz through nginx (no Redis): capacity.gateway_rps
    buy       POST buy on a scratch product: capacity.buy_rps, capacity.buy_p50_ms
    wrk buy   the same purchase path driven by wrk, where wrk is installed: capacity.wrk_buy_rps

The scratch product (SCRATCH_PRODUCT, reset with the admin API to REFERENCE_STRATEGY and
SCRATCH_STOCK units, every request a fresh user) is the machine's reference purchase path,
whatever the experiment's own strategy: a slower design then shows as a ratio, not as a slower
machine. Its keys are deleted straight after (flashlab.system.truth.drop_product), before the
run's own product is reset and the metrics scraper takes its baseline, so it leaves no trace in
truth.json, history.parquet or the reconciliation.

Not probed: `capacity: off`, and a target file's backend (the lab cannot put a scratch product
on a backend it did not build); capacity is then recorded as unavailable with the reason, and a
clause that needs it is inconclusive.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.isolation import pinned
from flashlab.core.platform import ComponentNotRunning
from flashlab.lab.experiment import CapacitySpec
from flashlab.lab.experiment import Experiment
from flashlab.lab.stacks import RunStack
from flashlab.simulator import wrk
from flashlab.simulator.closedloop import WARMUP_FRACTION
from flashlab.simulator.closedloop import LoopResult
from flashlab.simulator.closedloop import LoopSpec
from flashlab.simulator.closedloop import closed_loop
from flashlab.simulator.closedloop import purchase_loop
from flashlab.simulator.rawhttp import loopback_address
from flashlab.system import procs
from flashlab.system.admin import AdminClient
from flashlab.system.admin import AdminError
from flashlab.system.truth import drop_product

SCRATCH_PRODUCT = "flashlab-capacity-probe"
SCRATCH_STOCK = 10_000_000  # the contract's most: never sells out within MAX_REQUESTS
REFERENCE_STRATEGY = Strategy.lua
MAX_REQUESTS = 200_000  # per loop, over all connections
MAX_CONNECTIONS = 4096
REQUEST_TIMEOUT_S = 5.0
TARGET_REASON = (
    "not probed: a target file's backend has no scratch product the lab could sell from "
    "(docs/METHOD.md, 'Portable verdicts')"
)


def unavailable(reason: str) -> dict[str, Any]:
    """The record of a probe that did not run."""
    return {"available": False, "reason": reason}


def probe_connections(exp: Experiment) -> int:
    """The experiment's own connection count: per worker, times the workers (inline: one)."""
    workers = 1 if exp.engine.kind == "inline" else exp.engine.workers
    return min(MAX_CONNECTIONS, exp.connections_per_worker() * workers)


def probe_capacity(stack: RunStack, exp: Experiment, load_cpus: list[int] | None) -> dict[str, Any]:
    """manifest["capacity"]: what the stack served (module doc); ComponentNotRunning when it
    does not serve at all (as the reset would find)."""
    spec = exp.capacity_probe
    if spec is None:
        return unavailable("capacity: off")
    if stack.target is not None:
        return unavailable(TARGET_REASON)
    try:
        loopback_address(stack.base_url)
    except ValueError as exc:
        return unavailable(f"not probed: {exc}")
    started = time.monotonic()
    try:
        record = _probe(stack, exp, spec, load_cpus)
    except (AdminError, httpx.HTTPError, redis.RedisError) as exc:
        raise ComponentNotRunning(f"{stack.base_url}: the capacity probe failed: {exc}") from exc
    record["duration_s"] = round(time.monotonic() - started, 3)
    return record


def _loop(stack: RunStack, spec: CapacitySpec, connections: int, buy: bool) -> LoopSpec:
    if buy:
        return purchase_loop(
            stack.base_url, SCRATCH_PRODUCT, connections, spec.probe_s,
            max_requests=MAX_REQUESTS, user_prefix="capacity", timeout_s=REQUEST_TIMEOUT_S,
        )  # fmt: skip
    return LoopSpec(
        base_url=stack.base_url,
        method="GET",
        path="/healthz",
        connections=connections,
        duration_s=spec.probe_s,
        warmup_s=spec.probe_s * WARMUP_FRACTION,
        max_requests=MAX_REQUESTS,
        timeout_s=REQUEST_TIMEOUT_S,
        user_prefix="capacity",
    )


def _probe(
    stack: RunStack, exp: Experiment, spec: CapacitySpec, load_cpus: list[int] | None
) -> dict[str, Any]:
    connections = probe_connections(exp)
    with AdminClient(stack.base_url, stack.admin_token) as admin:
        admin.wait_ready(timeout_s=30)
        with pinned(load_cpus):
            gateway = closed_loop(_loop(stack, spec, connections, buy=False))
        admin.reset(
            ResetRequest(
                product_id=SCRATCH_PRODUCT, stock=SCRATCH_STOCK, strategy=REFERENCE_STRATEGY
            )
        )
    try:
        with pinned(load_cpus):
            buy = closed_loop(_loop(stack, spec, connections, buy=True))
        wrk_buy = _wrk_buy(stack, spec, connections, load_cpus)
    finally:
        drop_product(stack.redis_url, SCRATCH_PRODUCT)
    return _record(spec, connections, gateway, buy, wrk_buy)


def _record(
    spec: CapacitySpec,
    connections: int,
    gateway: LoopResult,
    buy: LoopResult,
    wrk_buy: dict[str, Any],
) -> dict[str, Any]:
    missing: dict[str, str] = {}
    if gateway.ok_rps is None:
        missing["gateway_rps"] = missing_reason(gateway)
    if buy.ok_rps is None:
        missing["buy_rps"] = missing["buy_p50_ms"] = missing_reason(buy)
    if wrk_buy.get("ok_rps") is None:
        missing["wrk_buy_rps"] = str(wrk_buy.get("reason") or "wrk measured no purchase")
    return {
        "available": gateway.ok_rps is not None and buy.ok_rps is not None,
        "reason": "; ".join(sorted(set(missing.values()))) or None,
        "strategy": REFERENCE_STRATEGY.value,
        "product_id": SCRATCH_PRODUCT,
        "connections": connections,
        "probe_s": spec.probe_s,
        "warmup_s": round(spec.probe_s * WARMUP_FRACTION, 3),
        "gateway_rps": _round(gateway.ok_rps, 1),
        "buy_rps": _round(buy.ok_rps, 1),
        "buy_p50_ms": _round(buy.p50_ms, 2),
        "wrk_buy_rps": _round(wrk_buy.get("ok_rps"), 1),
        "missing": missing,
        "loops": {"gateway": loop_record(gateway), "buy": loop_record(buy), "wrk_buy": wrk_buy},
    }


def missing_reason(result: LoopResult) -> str:
    return (
        f"no 2xx answer in the {result.window_s:.2f} s window ({result.other} other answers, "
        f"{result.failed} without an answer)"
    )


def loop_record(result: LoopResult) -> dict[str, Any]:
    """One loop's counts, and how busy its client was (near 100%: the client, not the stack,
    may have been the limit)."""
    return {
        "ok": result.ok,
        "other": result.other,
        "failed": result.failed,
        "sent": result.sent,
        "window_s": round(result.window_s, 3),
        "client_cpu_pct": _round(result.client_cpu_pct, 1),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _wrk_buy(
    stack: RunStack, spec: CapacitySpec, connections: int, load_cpus: list[int] | None
) -> dict[str, Any]:
    """wrk on the purchase path (pinned to the load CPUs); {"ok_rps": None, "reason": ...} when
    it is not installed, turned off, or fails."""
    if not spec.wrk:
        return {"ok_rps": None, "reason": "wrk off (capacity.wrk: false)"}
    if wrk.installed() is None:
        return {"ok_rps": None, "reason": "wrk not installed"}
    threads = max(1, len(load_cpus or ()))
    body = orjson.dumps({"productId": SCRATCH_PRODUCT}).decode()
    with wrk.wrk_script() as script:
        argv = wrk.wrk_argv(
            stack.base_url.rstrip("/") + BUY_PATH, script, method="POST", body=body,
            threads=threads, connections=connections, duration_s=spec.probe_s,
            prefix="capacity-wrk", timeout_s=f"{REQUEST_TIMEOUT_S:g}s",
        )  # fmt: skip
        output = _run_wrk(argv, spec.probe_s, load_cpus, script.parent)
    try:
        stats = wrk.parse_summary(output)
    except wrk.WrkOutputError as exc:
        return {"ok_rps": None, "reason": str(exc)}
    seconds = stats["duration_us"] / 1e6
    ok_rps = round(stats["s2xx"] / seconds, 1) if stats["s2xx"] and seconds > 0 else None
    return {"ok_rps": ok_rps, "requests": stats["requests"], "s2xx": stats["s2xx"],
            "seconds": round(seconds, 3), "p50_ms": stats["p50_us"] / 1000}  # fmt: skip


def _run_wrk(argv: list[str], probe_s: float, cpus: list[int] | None, tmp: Path) -> str:
    """wrk to completion (bounded: killed after its own duration + 15 s); its output."""
    log = tmp / "wrk.log"
    tracked = procs.spawn(argv, name="capacity-wrk", log_path=log, cpus=cpus)
    try:
        procs.wait(tracked.pid, max(1, round(probe_s)) + 15)
    finally:
        procs.terminate(tracked.pid, grace=2.0)
    return log.read_text(errors="replace") if log.exists() else ""
