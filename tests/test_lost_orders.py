"""Lost acknowledged orders across an empty Redis restart, with real parts: a real redis-server
(durability none) SIGKILLed and started again empty, real API workers behind nginx.

Without a re-seed the product is gone, so no order can be minted after the restart (every
strategy answers 404). With a re-seed (an operator resetting the product) the new order log
numbers its orders from o-1 again: the acknowledged ids from before the restart all reappear,
held by other users. lost_acknowledged matches (order id, user), so it still counts them lost.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from support import poll

from flashlab.analysis.checks.consistency import LostAcknowledged
from flashlab.analysis.checks.consistency import PhantomOrders
from flashlab.analysis.reconcile import reconcile
from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.rundir import Run
from flashlab.system.admin import AdminClient
from flashlab.system.platforms.local import LocalPlatform
from flashlab.system.truth import read_truth

PRODUCT = "restart"
StackFactory = Callable[..., Any]  # tests/conftest.py's make_stack


@pytest.fixture
def stack(make_stack: StackFactory) -> Iterator[tuple[LocalPlatform, httpx.Client, AdminClient]]:
    config = {"workers": 2, "durability": "none"}
    with (
        make_stack(**config) as (platform, info),
        AdminClient(info.base_url, info.admin_token) as admin,
        httpx.Client(base_url=info.base_url, timeout=10.0) as http,
    ):
        yield platform, http, admin


def buy(http: httpx.Client, user: str) -> httpx.Response:
    return http.post(BUY_PATH, json={"productId": PRODUCT}, headers={USER_HEADER: user})


def buy_all(http: httpx.Client, users: list[str]) -> list[dict[str, Any]]:
    """One acknowledged purchase per user, as the history's `ok` rows the checks read."""
    rows = []
    for user in users:
        response = buy(http, user)
        assert response.status_code == 200, response.text
        order = response.json()["orderId"]
        rows.append({"op_id": f"{user}:1", "user_id": user, "type": "ok", "order_id": order})
    return rows


def restart_empty(platform: LocalPlatform, http: httpx.Client) -> None:
    platform.signal("redis", signal.SIGKILL)
    poll(lambda: not any(c.running for c in platform.components() if c.name == "redis"),
         "redis to die", 10.0)  # fmt: skip
    platform.start_component("redis")
    poll(lambda: buy(http, "probe").status_code != 503, "the API to reach Redis again", 15.0)


def judged(tmp_path: Path, platform: LocalPlatform, rows: list[dict[str, Any]]) -> Run:
    truth = read_truth(platform.status().redis_url, PRODUCT)
    return Run(tmp_path, {}, pd.DataFrame(rows), pd.DataFrame(), truth)


@pytest.mark.parametrize("strategy", [Strategy.lua, Strategy.lock, Strategy.queue])
def test_no_order_is_minted_after_an_empty_restart_without_a_reseed(
    stack: tuple[LocalPlatform, httpx.Client, AdminClient], strategy: Strategy
) -> None:
    platform, http, admin = stack
    admin.reset(ResetRequest(product_id=PRODUCT, stock=10, strategy=strategy))
    buy_all(http, ["a-0", "a-1"])
    restart_empty(platform, http)
    for i in range(4):  # both workers (nginx round robin), with or without a cached meta
        assert buy(http, f"after-{i}").status_code == 404
    truth = read_truth(platform.status().redis_url, PRODUCT)
    assert truth.orders == [] and truth.stock_initial == 0


def test_reseeded_restart_reuses_order_ids_and_lost_acknowledged_still_counts_them(
    stack: tuple[LocalPlatform, httpx.Client, AdminClient], tmp_path: Path
) -> None:
    platform, http, admin = stack
    reset = ResetRequest(product_id=PRODUCT, stock=10, strategy=Strategy.lua)
    admin.reset(reset)
    before = buy_all(http, [f"a-{i}" for i in range(5)])
    restart_empty(platform, http)
    admin.reset(reset)  # the operator re-seeds the sale on the empty Redis
    after = buy_all(http, [f"b-{i}" for i in range(5)])

    # The blind spot: every id acknowledged before the restart is in the new log again.
    assert {r["order_id"] for r in before} == {r["order_id"] for r in after}
    run = judged(tmp_path, platform, before + after)
    lost = LostAcknowledged().run(run)
    assert lost.count == 5 and set(lost.examples) == {r["op_id"] for r in before}
    assert PhantomOrders().run(run).count == 0  # the new orders were acknowledged to b-*
    # Ten acknowledged orders, five in Redis: the reconciliation sees the gap too.
    books = reconcile(run)
    assert books["client_ok"] == 10 and books["redis_orders"] == 5 and not books["ok"]
