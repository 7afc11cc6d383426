"""A closed loop over the raw client: N connections, each sending its next request on the last answer.

The lab's capacity probe (flashlab.lab.capacity) measures how fast the stack answers with it: no
schedule, no think time, so the rate it reaches is what the server (and the path in front of it)
can serve at that concurrency. Every request carries a fresh `x-user-id` (`<prefix>-<conn>-<n>`),
so a purchase never meets its own earlier one.

Bounded three ways: `duration_s` (no request starts after it), `max_requests` (over all
connections) and each request's own `timeout_s`; the whole loop is cancelled if it outlives
`duration_s + timeout_s + GRACE_S`. Answers that complete in the first `warmup_s` (connections
opening, caches warming) are not counted in the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

import numpy as np
import orjson
import uvloop

from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.simulator.rawhttp import LoopbackPool
from flashlab.simulator.rawhttp import RawHttpError

GRACE_S = 5.0  # beyond the last request's own timeout, before the loop is cancelled
WARMUP_FRACTION = 0.2  # of a loop's duration: connections open, caches warm; not counted
FAILURE_PAUSE_S = 0.01  # after an answerless failure: a dead server is not spun on


@dataclass(frozen=True)
class LoopSpec:
    """What to send, how many at once, and for how long."""

    base_url: str  # a loopback http:// URL (the raw client's rule)
    method: str
    path: str
    connections: int
    duration_s: float
    warmup_s: float
    max_requests: int
    timeout_s: float = 5.0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    user_prefix: str = "probe"


def purchase_loop(
    base_url: str,
    product_id: str,
    connections: int,
    duration_s: float,
    *,
    max_requests: int,
    user_prefix: str,
    timeout_s: float = 5.0,
) -> LoopSpec:
    """A loop of purchases of `product_id` (POST buy, a fresh user each), its first
    WARMUP_FRACTION not counted."""
    return LoopSpec(
        base_url=base_url,
        method="POST",
        path=BUY_PATH,
        connections=connections,
        duration_s=duration_s,
        warmup_s=duration_s * WARMUP_FRACTION,
        max_requests=max_requests,
        timeout_s=timeout_s,
        body=orjson.dumps({"productId": product_id}),
        headers={"Content-Type": "application/json"},
        user_prefix=user_prefix,
    )


@dataclass
class LoopResult:
    """Answers counted in the window [start + warmup_s, start + duration_s]."""

    window_s: float
    ok: int = 0  # 2xx answers in the window
    other: int = 0  # non-2xx answers in the window
    failed: int = 0  # no answer (connect, timeout, dropped), whole run
    sent: int = 0  # requests started, whole run
    latencies_ms: list[float] = field(default_factory=list)  # of the window's 2xx answers
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0  # the loop's own CPU (its thread), whole run

    @property
    def ok_rps(self) -> float | None:
        return self.ok / self.window_s if self.ok and self.window_s > 0 else None

    @property
    def p50_ms(self) -> float | None:
        return float(np.median(self.latencies_ms)) if self.latencies_ms else None

    @property
    def client_cpu_pct(self) -> float | None:
        return 100.0 * self.client_cpu_s / self.elapsed_s if self.elapsed_s > 0 else None


def closed_loop(spec: LoopSpec) -> LoopResult:
    """Run the loop on a fresh uvloop in this thread (pin the caller first: isolation.pinned)."""
    cpu0, t0 = time.thread_time(), time.monotonic()
    result = uvloop.run(_bounded(spec))
    result.elapsed_s = time.monotonic() - t0
    result.client_cpu_s = time.thread_time() - cpu0
    return result


async def _bounded(spec: LoopSpec) -> LoopResult:
    pool = LoopbackPool(spec.base_url, spec.connections, spec.timeout_s)
    loop = asyncio.get_running_loop()
    start = loop.time()
    window = (start + spec.warmup_s, start + spec.duration_s)
    result = LoopResult(window_s=spec.duration_s - spec.warmup_s)
    template = pool.template(spec.method, spec.path, spec.headers, spec.body, USER_HEADER)
    workers = [
        _connection(pool, template.render, f"{spec.user_prefix}-{i}-", spec, window, result)
        for i in range(spec.connections)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*workers), spec.duration_s + spec.timeout_s + GRACE_S)
    except TimeoutError:
        pass  # bounded: what was counted so far stands
    finally:
        await pool.close()
    return result


async def _connection(
    pool: LoopbackPool,
    render: Callable[[str], bytes],
    prefix: str,
    spec: LoopSpec,
    window: tuple[float, float],
    result: LoopResult,
) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    while loop.time() < window[1] and result.sent < spec.max_requests:
        n += 1
        result.sent += 1
        began = loop.time()
        try:
            status, _body, _retry = await pool.send(render(f"{prefix}{n}"))
        except (RawHttpError, OSError):
            result.failed += 1
            await asyncio.sleep(FAILURE_PAUSE_S)
            continue
        done = loop.time()
        if not window[0] <= done <= window[1]:
            continue
        if 200 <= status < 300:
            result.ok += 1
            result.latencies_ms.append((done - began) * 1000.0)
        else:
            result.other += 1
