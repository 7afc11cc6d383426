"""The waiting room (strategy `queue`) and the rate limit on a real stack through nginx: tickets in
arrival order, FIFO admission up to the stock, rollover of unused admissions, exactly the stock
sold under a burst, 503 (never 500) when Redis is down, and 429 + Retry-After from the token
bucket. Plus FCFS inversions counted from a history (O(n log n)), used to compare queue and lua."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pandas as pd
import pytest
from support import poll

from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import QUEUE_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import ErrorBody
from flashlab.core.contract import ErrorCode
from flashlab.core.contract import QueueState
from flashlab.core.contract import QueueStatus
from flashlab.core.contract import RateLimit
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.platform import StackInfo
from flashlab.system.admin import AdminClient
from flashlab.system.truth import read_truth

StackFactory = Callable[..., Any]
ROOT = Path(__file__).resolve().parents[1]


def reset_queue(admin: AdminClient, product: str, stock: int, ttl_ms: int = 60_000) -> None:
    admin.reset(
        ResetRequest(
            product_id=product,
            stock=stock,
            strategy=Strategy.queue,
            settings={"admission_ttl_ms": ttl_ms},
        )
    )


def join(http: httpx.Client, product: str, user: str) -> httpx.Response:
    return http.post(QUEUE_PATH, json={"productId": product}, headers={USER_HEADER: user})


def joined(http: httpx.Client, product: str, user: str) -> QueueStatus:
    response = join(http, product, user)
    assert response.status_code == 200, response.text
    return QueueStatus.model_validate_json(response.content)


def buy(http: httpx.Client, product: str, user: str) -> httpx.Response:
    return http.post(BUY_PATH, json={"productId": product}, headers={USER_HEADER: user})


def status(http: httpx.Client, product: str, ticket: int) -> httpx.Response:
    return http.get(f"{QUEUE_PATH}/{product}/{ticket}")


def assert_error(response: httpx.Response, status_code: int, code: ErrorCode) -> ErrorBody:
    assert response.status_code == status_code, response.text
    body = ErrorBody.model_validate_json(response.content)
    assert body.code is code, body
    return body


@pytest.fixture
def http(local_stack: StackInfo) -> Any:
    with httpx.Client(base_url=local_stack.base_url, timeout=10.0) as client:
        yield client


def test_tickets_in_arrival_order_admit_fifo_up_to_the_stock(
    admin: AdminClient, http: httpx.Client, local_stack: StackInfo
) -> None:
    product, stock, users = "q-fifo", 5, [f"u{i:02d}" for i in range(12)]
    reset_queue(admin, product, stock)

    statuses = [joined(http, product, u) for u in users]

    assert [s.ticket for s in statuses] == list(range(1, 13))
    assert [s.state for s in statuses] == [QueueState.admitted] * 5 + [QueueState.waiting] * 7
    assert [s.position for s in statuses[5:]] == list(range(1, 8))
    assert all(s.expires_in_ms > 0 for s in statuses[:5])
    assert joined(http, product, users[7]).ticket == 8  # joining again keeps the ticket
    assert_error(buy(http, product, users[5]), 409, ErrorCode.not_admitted)
    assert_error(buy(http, product, "walk-in"), 409, ErrorCode.not_admitted)  # people wait

    for user in reversed(users[:stock]):  # admitted ones may buy in any order
        assert buy(http, product, user).status_code == 200
    assert_error(buy(http, product, users[0]), 409, ErrorCode.already_purchased)
    assert_error(buy(http, product, users[6]), 410, ErrorCode.sold_out)
    assert_error(join(http, product, "late"), 410, ErrorCode.sold_out)
    waiting = QueueStatus.model_validate_json(status(http, product, 9).content)
    assert waiting.state is QueueState.sold_out
    bought = QueueStatus.model_validate_json(status(http, product, 1).content)
    assert bought.state is QueueState.purchased

    truth = read_truth(local_stack.redis_url, product)
    assert sorted(truth.buyers) == users[:stock] and truth.stock_remaining == 0


def test_unused_admissions_roll_to_the_next_tickets(
    admin: AdminClient, http: httpx.Client, local_stack: StackInfo
) -> None:
    product = "q-rollover"
    reset_queue(admin, product, stock=3, ttl_ms=300)
    for user in ("a", "b", "c", "d", "e"):
        joined(http, product, user)
    assert buy(http, product, "a").status_code == 200  # b and c let their admissions run out

    def admitted(ticket: int) -> bool:
        got = QueueStatus.model_validate_json(status(http, product, ticket).content)
        return got.state is QueueState.admitted

    poll(lambda: admitted(4) and admitted(5), "tickets 4 and 5 admitted after 2, 3 expired", 15)
    assert_error(buy(http, product, "b"), 410, ErrorCode.admission_expired)
    again = joined(http, product, "b")  # an expired ticket rejoins at the back
    assert (again.ticket, again.state, again.position) == (6, QueueState.waiting, 1)
    assert buy(http, product, "d").status_code == 200
    assert buy(http, product, "e").status_code == 200
    assert_error(join(http, product, "b"), 410, ErrorCode.sold_out)
    truth = read_truth(local_stack.redis_url, product)
    assert sorted(truth.buyers) == ["a", "d", "e"] and len(truth.orders) == 3


def test_quiet_queue_buys_like_lua_and_bad_requests_are_4xx(
    admin: AdminClient, http: httpx.Client
) -> None:
    product = "q-quiet"
    reset_queue(admin, product, stock=2)
    assert buy(http, product, "walk-in").status_code == 200  # nobody waiting: admitted at once
    assert_error(join(http, "no-such-product", "x"), 404, ErrorCode.not_found)
    admin.reset(ResetRequest(product_id="q-lua", stock=1, strategy=Strategy.lua))
    assert_error(join(http, "q-lua", "x"), 404, ErrorCode.not_found)  # no waiting room there
    assert_error(status(http, product, 99), 404, ErrorCode.not_found)
    assert_error(status(http, product, 0), 422, ErrorCode.validation_error)
    assert_error(http.post(QUEUE_PATH, json={"productId": product}), 401, ErrorCode.unauthenticated)
    assert_error(
        http.post(QUEUE_PATH, json={"product": product}, headers={USER_HEADER: "x"}),
        422,
        ErrorCode.validation_error,
    )


async def _queue_shopper(session: aiohttp.ClientSession, base: str, product: str, user: str) -> int:
    """Join, poll (bounded) until admitted or sold out, then buy once: the final status."""
    body, headers = {"productId": product}, {USER_HEADER: user}
    for _ in range(400):
        async with session.post(base + QUEUE_PATH, json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200 or data["state"] == "sold_out":
                return resp.status
        if data["state"] == "admitted":
            async with session.post(base + BUY_PATH, json=body, headers=headers) as resp:
                return resp.status
        await asyncio.sleep(min(0.5, 0.02 + 0.002 * data["position"]))
    return 0


async def _queue_burst(base: str, product: str, n: int) -> list[int]:
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with asyncio.timeout(120):
            users = [f"burst-{i:04d}" for i in range(n)]
            return await asyncio.gather(*(_queue_shopper(session, base, product, u) for u in users))


def test_queue_burst_sells_exactly_the_stock_never_twice(
    admin: AdminClient, local_stack: StackInfo
) -> None:
    product, stock, n = "q-burst", 50, 400
    reset_queue(admin, product, stock)

    finals = asyncio.run(_queue_burst(local_stack.base_url, product, n))

    assert Counter(finals) == {200: stock, 410: n - stock}
    truth = read_truth(local_stack.redis_url, product)
    assert truth.stock_remaining == 0 and len(truth.orders) == stock
    assert len(set(truth.buyers)) == stock
    assert len({o.order_id for o in truth.orders}) == stock


def test_queue_answers_503_not_500_when_redis_is_down(make_stack: StackFactory) -> None:
    with (
        make_stack(workers=2, durability="none", redis_timeout_ms=300) as (platform, info),
        AdminClient(info.base_url, info.admin_token) as admin,
        httpx.Client(base_url=info.base_url, timeout=10.0) as http,
    ):
        reset_queue(admin, "q-outage", stock=10)
        ticket = joined(http, "q-outage", "before").ticket
        platform.signal("redis", signal.SIGKILL)
        poll(
            lambda: not any(c.running for c in platform.components() if c.name == "redis"),
            "redis to die",
            10,
        )
        for i in range(4):  # four calls each: nginx's round robin reaches both workers
            assert_error(join(http, "q-outage", f"u{i}"), 503, ErrorCode.backend_unavailable)
            assert_error(status(http, "q-outage", ticket), 503, ErrorCode.backend_unavailable)
            body = assert_error(buy(http, "q-outage", "before"), 503, ErrorCode.backend_unavailable)
            assert body.maybe_committed is False  # refused before anything was sent


def test_rate_limit_answers_429_with_retry_after(admin: AdminClient, http: httpx.Client) -> None:
    product = "rl-user"
    limit = RateLimit(per_user_rate_per_s=0.5, per_user_burst=2)
    admin.reset(ResetRequest(product_id=product, stock=5, strategy=Strategy.lock, rate_limit=limit))

    assert buy(http, product, "bot").status_code == 200
    assert_error(buy(http, product, "bot"), 409, ErrorCode.already_purchased)
    limited = buy(http, product, "bot")
    assert_error(limited, 429, ErrorCode.rate_limited)
    assert limited.headers["Retry-After"] == "2"  # 1 token at 0.5/s: up to 2 s, whole seconds
    assert 0 < limited.json()["retryAfterMs"] <= 2000
    assert buy(http, product, "human").status_code == 200  # another user's bucket is full

    admin.reset(
        ResetRequest(
            product_id="rl-ip",
            stock=5,
            strategy=Strategy.lua,
            rate_limit=RateLimit(per_ip_rate_per_s=0.01, per_ip_burst=3),
        )
    )
    answers = [buy(http, "rl-ip", f"u{i}").status_code for i in range(4)]
    assert answers == [200, 200, 200, 429]  # all of them come from 127.0.0.1


# --------------------------------------------------------------------------- FCFS inversions


def fcfs_inversions(history: pd.DataFrame, patience: dict[str, float]) -> tuple[int, int]:
    """(inversions, candidate pairs) of one run: pairs where shopper i arrived before j
    (`shopper` is the arrival rank), i's patience (its profile's max_wait_s) is at least j's,
    i did not buy and j did. Candidate pairs: (non-buyer, buyer) pairs with i before j in arrival
    and patience_i >= patience_j. A Fenwick tree over patience ranks: O(n log n)."""
    bought = set(history.loc[history["type"].eq("ok"), "shopper"])
    people = history.groupby("shopper")["profile"].first().sort_index()
    levels = sorted({patience[p] for p in people})
    rank = {v: i + 1 for i, v in enumerate(levels)}
    tree = [0] * (len(levels) + 1)

    def add(i: int) -> None:
        while i <= len(levels):
            tree[i] += 1
            i += i & -i

    def count_upto(i: int) -> int:
        total = 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total

    inversions = seen = 0
    for shopper, profile in people.items():
        r = rank[patience[profile]]
        if shopper in bought:
            inversions += seen - count_upto(r - 1)  # earlier non-buyers with patience >= mine
        else:
            add(r)
            seen += 1
    candidates = len(bought) * (len(people) - len(bought))
    return inversions, candidates


def test_fcfs_inversions_counts_pairs() -> None:
    rows = [
        (0, "p", "fail"),  # arrived first, patient, did not buy
        (1, "p", "ok"),  # inversion with 0
        (2, "i", "fail"),  # impatient non-buyer: no inversion with later buyers of patience p
        (3, "p", "ok"),  # inversion with 0 only (2 is less patient)
        (4, "i", "ok"),  # inversions with 0 and 2
    ]
    history = pd.DataFrame(rows, columns=["shopper", "profile", "type"])
    assert fcfs_inversions(history, {"p": 20.0, "i": 3.0}) == (4, 6)


def test_queue_experiment_end_to_end(tmp_path: Any) -> None:
    """`flashlab run` of a small queue experiment: sells exactly the stock, polls are no
    purchase attempts (attempt 0 rows only for shoppers that left the queue), verdict pass."""
    import yaml
    from typer.testing import CliRunner

    from flashlab.cli import app
    from flashlab.core.rundir import load_run

    exp = yaml.safe_load((ROOT / "experiments" / "queue.yaml").read_text())
    exp["scenario"]["shoppers"], exp["product"]["stock"] = 600, 60
    exp["hypothesis"] = ["oversell == 0", "lost_acknowledged == 0"]
    path = tmp_path / "queue-small.yaml"
    path.write_text(yaml.safe_dump(exp))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = load_run(out)
    h = run.history
    assert int(h["type"].eq("ok").sum()) == 60 and h.loc[h["type"].eq("ok"), "user_id"].is_unique
    assert set(h.loc[h["attempt"].eq(0), "type"]) <= {"fail"}
    assert h.loc[h["attempt"].eq(0), "op_id"].str.endswith(":q").all()
    assert h["shopper"].nunique() == 600  # every shopper left a trace: a purchase or a queue row
    assert run.truth.stock_remaining == 0


class SlowCheckout:
    """The real client, with its first `slow` purchases held back `delay_s`: a shopper who dawdles
    between admission and checkout. The delay is the only thing not real here (a human's
    slowness); the waiting room, its TTL and the answers are the real stack's."""

    def __init__(self, inner: Any, slow: int, delay_s: float) -> None:
        self.inner, self.slow, self.delay_s = inner, slow, delay_s

    async def buy(self, user_id: str, attempt: int = 1) -> Any:
        if self.slow > 0:
            self.slow -= 1
            await asyncio.sleep(self.delay_s)
        return await self.inner.buy(user_id, attempt)

    async def queue(self, user_id: str) -> Any:
        return await self.inner.queue(user_id)

    async def close(self) -> None:
        await self.inner.close()


async def _one_queue_shopper(base: str, product: str, profile: Any, slow: int) -> list[dict]:
    """One shopper driven by the simulator's own driver; returns its history rows."""
    import time

    from flashlab.simulator.client import make_client
    from flashlab.simulator.scenario import Scenario
    from flashlab.simulator.schedule import ShopperPlan
    from flashlab.simulator.shopper import DriveSpec
    from flashlab.simulator.shopper import Recorder
    from flashlab.simulator.shopper import _Driver

    scenario = Scenario(shoppers=1, profiles=[profile], request_timeout_s=5)
    spec = DriveSpec("rejoin", base, product, scenario, "aiohttp", 4, "w0", queue=True)
    client = SlowCheckout(make_client("aiohttp", base, product, 4, 5.0), slow, 2.5)
    rows: list[dict] = []
    recorder = Recorder(lambda ship: rows.extend(ship.batch.to_pylist() if ship.batch else []))
    driver = _Driver(spec, client, recorder, time.time_ns())
    try:
        await driver.shopper(ShopperPlan(0, "u-0", profile.name, 0.0, 1), time.time_ns())
    finally:
        await client.close()
        recorder.flush(final=True)
    return rows


@pytest.mark.parametrize(
    ("slow", "max_attempts", "codes"),
    [
        (2, 5, ["admission_expired", "admission_expired", "ok"]),  # rejoins twice, then buys
        (1, 1, ["admission_expired"]),  # no patience left: does not rejoin
        (9, 3, ["admission_expired"] * 3),  # rejoins bounded by max_attempts
    ],
)
def test_expired_admission_rejoins_at_the_back_within_patience(
    admin: AdminClient, local_stack: StackInfo, slow: int, max_attempts: int, codes: list[str]
) -> None:
    from flashlab.simulator.scenario import Profile

    product = f"rejoin-{slow}-{max_attempts}"
    reset_queue(admin, product, stock=5, ttl_ms=1000)  # 1 s admissions, a slow checkout 2.5 s
    profile = Profile(name="p", max_attempts=max_attempts, max_wait_s=20)
    rows = asyncio.run(_one_queue_shopper(local_stack.base_url, product, profile, slow))
    rows.sort(key=lambda r: r["attempt"])
    assert [r["code"] for r in rows] == codes
    assert [r["attempt"] for r in rows] == list(range(1, len(codes) + 1))
    # A rejoined attempt's intended time is when it went back to the queue (its wait counts).
    for prev, row in itertools.pairwise(rows):
        assert row["intended_ns"] == prev["complete_ns"]
    truth = read_truth(local_stack.redis_url, product)
    assert [o.user_id for o in truth.orders] == (["u-0"] if codes[-1] == "ok" else [])
