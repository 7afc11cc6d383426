"""Redis outages through nginx: the API answers 503 within its timeout bound, keeps serving, and
recovers by itself (same worker processes) once Redis is back."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import ErrorBody
from flashlab.core.contract import ErrorCode
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.system.admin import AdminClient
from flashlab.system.platforms.local import LocalPlatform
from flashlab.system.truth import read_truth

TIMEOUT_MS = 300  # FLASHLAB_REDIS_TIMEOUT_MS of these stacks
# Worst case per request: pool wait + connect + reply, each bounded by the timeout; plus slack
# for a loaded CI machine. This is a correctness bound (no hang), not a speed assertion.
BOUND_S = 3 * TIMEOUT_MS / 1000 + 2.0
RECOVERY_DEADLINE_S = 15.0
PRODUCT = "outage"
StackFactory = Callable[..., Any]  # tests/conftest.py's make_stack


@pytest.fixture
def stack(make_stack: StackFactory) -> Iterator[tuple[LocalPlatform, httpx.Client, AdminClient]]:
    # aof-always: the product and acknowledged orders survive the Redis restart.
    config = {"workers": 2, "durability": "aof-always", "redis_timeout_ms": TIMEOUT_MS}
    with (
        make_stack(**config) as (platform, info),
        AdminClient(info.base_url, info.admin_token) as admin,
    ):
        admin.reset(ResetRequest(product_id=PRODUCT, stock=100, strategy=Strategy.lua))
        with httpx.Client(base_url=info.base_url, timeout=10.0) as http:
            yield platform, http, admin


def buy(http: httpx.Client, user: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = http.post(BUY_PATH, json={"productId": PRODUCT}, headers={USER_HEADER: user})
    return response, time.monotonic() - start


def api_pids(platform: LocalPlatform) -> dict[str, int | None]:
    return {c.name: c.pid for c in platform.components() if c.kind == "api"}


def wait_for_purchase(http: httpx.Client, prefix: str) -> int:
    """Poll (bounded) until a purchase succeeds again; returns how many attempts it took."""
    deadline = time.monotonic() + RECOVERY_DEADLINE_S
    for attempt in range(1, 10_000):
        response, _ = buy(http, f"{prefix}-{attempt}")
        if response.status_code == 200:
            return attempt
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, f"no purchase within {RECOVERY_DEADLINE_S}s of recovery"
        time.sleep(0.05)
    raise AssertionError("unreachable")


def assert_unavailable(response: httpx.Response, elapsed: float, committed: bool) -> None:
    assert response.status_code == 503, response.text
    body = ErrorBody.model_validate_json(response.content)
    assert body.code is ErrorCode.backend_unavailable
    assert body.maybe_committed is committed, body
    assert elapsed < BOUND_S, f"503 took {elapsed:.2f}s (bound {BOUND_S:.2f}s)"


def test_redis_killed_then_restarted(
    stack: tuple[LocalPlatform, httpx.Client, AdminClient],
) -> None:
    platform, http, admin = stack
    acknowledged = ["before-kill"]
    assert buy(http, "before-kill")[0].status_code == 200
    pids = api_pids(platform)

    platform.signal("redis", signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while any(c.running for c in platform.components() if c.name == "redis"):
        assert time.monotonic() < deadline, "redis did not die"
        time.sleep(0.02)

    # Connection refused happens before anything is sent: surely not committed. Four calls
    # so that nginx's round robin reaches both workers.
    for i in range(4):
        response, elapsed = buy(http, f"during-{i}")
        assert_unavailable(response, elapsed, committed=False)
    assert http.get("/readyz").status_code == 503
    assert http.get("/healthz").status_code == 200  # liveness does not depend on Redis

    platform.start_component("redis")
    attempts = wait_for_purchase(http, "after")
    acknowledged.append(f"after-{attempts}")
    for i in range(4):  # both workers serve again
        response, _ = buy(http, f"again-{i}")
        assert response.status_code == 200, response.text
        acknowledged.append(f"again-{i}")

    assert api_pids(platform) == pids, "API workers were restarted; they must recover in place"
    assert all(c.restarts == 0 for c in platform.components() if c.kind == "api")
    truth = read_truth(platform.status().redis_url, PRODUCT)
    assert set(acknowledged) <= set(truth.buyers)  # aof-always kept the pre-kill order
    assert admin.product(PRODUCT).sold == len(truth.orders)


def test_redis_paused_times_out_as_indeterminate(
    stack: tuple[LocalPlatform, httpx.Client, AdminClient],
) -> None:
    platform, http, _ = stack
    for i in range(4):  # both workers (round robin) cache the lua meta: the buy is one EVALSHA
        assert buy(http, f"warm-up-{i}")[0].status_code == 200
    pids = api_pids(platform)

    platform.signal("redis", signal.SIGSTOP)
    try:
        # The EVALSHA reaches Redis' socket but no reply comes: a timeout after sending the
        # write, so the answer must say the purchase may have been committed.
        response, elapsed = buy(http, "paused")
        assert_unavailable(response, elapsed, committed=True)
        assert http.get("/readyz").status_code == 503
    finally:
        platform.signal("redis", signal.SIGCONT)

    wait_for_purchase(http, "resumed")
    # Indeterminate means either outcome is legal: the unit was sold to "paused" or it was not.
    retry, _ = buy(http, "paused")
    if retry.status_code != 200:
        assert ErrorBody.model_validate_json(retry.content).code is ErrorCode.already_purchased
    assert api_pids(platform) == pids
