"""The `raw` shopper client (flashlab.simulator.rawhttp): same answers as aiohttp against the real stack,
the same failure classification for refused / dropped / timed-out requests, a bounded pool, and an
inline-engine run that agrees with Redis truth."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
import uvloop

from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.simulator.behaviour import classify
from flashlab.simulator.client import Answer
from flashlab.simulator.client import RawClient
from flashlab.simulator.client import make_client
from flashlab.simulator.engines import get_engine
from flashlab.simulator.engines.engine import LoadPlan
from flashlab.simulator.scenario import Profile
from flashlab.simulator.scenario import Scenario
from flashlab.simulator.scenario import Spike
from flashlab.system.admin import AdminClient
from flashlab.system.truth import read_truth

TIMEOUT_S = 5.0


def _run(coro: Awaitable[Any]) -> Any:
    return uvloop.run(asyncio.wait_for(coro, 30))  # bound every test's loop


def _verdict(a: Answer) -> tuple[str, Any]:
    v = classify(a.status, a.code, a.failure, a.maybe_committed)
    return v.type, v.retry_key


def _shape(a: Answer) -> tuple[Any, ...]:
    """Everything an answer says except the (per-purchase) order id and the error text."""
    return (
        a.status,
        a.code,
        a.order_id is not None,
        a.remaining,
        a.retry_after_s,
        a.maybe_committed,
        a.failure,
        _verdict(a),
    )


async def _buys(
    kind: str, base_url: str, product: str, users: list[str], **kw: Any
) -> list[Answer]:
    client = make_client(
        kind, base_url, product, kw.get("connections", 4), kw.get("timeout", TIMEOUT_S)
    )
    try:
        return [await client.buy(u) for u in users]
    finally:
        await client.close()


def _reset(admin: Any, product: str, stock: int) -> None:
    admin.reset(ResetRequest(product_id=product, stock=stock, strategy=Strategy.lua))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the real stack: raw answers exactly like aiohttp -------------------------------------------


def test_contract_rows_match_aiohttp(local_stack, admin) -> None:
    # Same stock, same sequence of users, one product per client: 200, 200, 409 already_purchased,
    # 410 sold_out, then an unknown product (404).
    users = ["u1", "u2", "u1", "u3"]
    shapes = {}
    for kind in ("aiohttp", "raw"):
        product = f"raw-contract-{kind}"
        _reset(admin, product, 2)
        answers = _run(_buys(kind, local_stack.base_url, product, users))
        answers += _run(_buys(kind, local_stack.base_url, f"raw-never-{kind}", ["u9"]))
        shapes[kind] = [_shape(a) for a in answers]
        assert [(a.status, a.code) for a in answers] == [
            (200, "ok"),
            (200, "ok"),
            (409, "already_purchased"),
            (410, "sold_out"),
            (404, "not_found"),
        ]
        assert [a.remaining for a in answers[:2]] == [1, 0]
    assert shapes["raw"] == shapes["aiohttp"]


def test_redis_killed_503_matches_aiohttp(make_stack) -> None:
    with make_stack(workers=2, durability="none", redis_timeout_ms=300) as (platform, info):
        with AdminClient(info.base_url, info.admin_token) as admin:
            _reset(admin, "raw-outage", 100)
        platform.signal("redis", signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while any(c.running for c in platform.components() if c.name == "redis"):
            assert time.monotonic() < deadline, "redis did not die"
            time.sleep(0.02)
        users = [f"during-{i}" for i in range(4)]  # four: nginx round robin reaches both workers
        shapes = {
            kind: [_shape(a) for a in _run(_buys(kind, info.base_url, "raw-outage", users))]
            for kind in ("aiohttp", "raw")
        }
    assert shapes["raw"] == shapes["aiohttp"]
    assert {s[:2] for s in shapes["raw"]} == {(503, "backend_unavailable")}
    assert {s[4] for s in shapes["raw"]} == {1.0}  # Retry-After: 1
    assert {s[-1] for s in shapes["raw"]} == {("fail", "backend_unavailable")}


def test_inline_engine_with_raw_client_matches_truth(local_stack, admin, tmp_path) -> None:
    profiles = [
        Profile(name="patient", weight=3, max_attempts=4, max_wait_s=10, backoff_base_ms=5),
        Profile(name="impatient", weight=1, max_attempts=1, max_wait_s=5),
    ]
    scenario = Scenario(
        shoppers=1_200, arrival=Spike(window_s=0.5), duration_s=30, profiles=profiles
    )
    _reset(admin, "raw-inline", 150)
    batches: list[pa.RecordBatch] = []
    lp = LoadPlan(
        run_id="t-raw-inline",
        base_url=local_stack.base_url,
        product_id="raw-inline",
        scenario=scenario,
        seed=7,
        client="raw",
        workers=1,
        connections=64,
        tmp_dir=str(tmp_path / "tmp"),
    )
    result = get_engine("inline").run(lp, on_batch=batches.append)
    history = pa.Table.from_batches(batches).to_pandas()
    truth = read_truth(local_stack.redis_url, "raw-inline")
    assert result.client == "raw" and result.rows == len(history)
    assert history["op_id"].is_unique and history["shopper"].nunique() == 1_200
    # Same check as tests/test_engines.py: acknowledged sales are in Redis, and any Redis order
    # without an ok row is explained by an indeterminate (info) attempt of that user.
    ok = history[history["type"] == "ok"]
    info_users = set(history.loc[history["type"] == "info", "user_id"])
    buyers = {o.user_id for o in truth.orders}
    assert set(ok["order_id"]) <= {o.order_id for o in truth.orders}
    assert set(ok["user_id"]) <= buyers and buyers - set(ok["user_id"]) <= info_users
    if not info_users:
        assert len(ok) == len(truth.orders)
    assert len(truth.orders) == 150 and truth.stock_remaining == 0  # 1,200 for 150: sells out
    assert truth.stock_initial == truth.stock_remaining + len(truth.orders)


# -- failure classification, against tiny local servers ------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _with_server(handler: Handler, body: Callable[[str], Awaitable[Any]]) -> Any:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await body(f"http://127.0.0.1:{port}")
    finally:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


def _response(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_connection_refused_is_never_sent() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    for kind in ("aiohttp", "raw"):
        (answer,) = _run(_buys(kind, url, "p", ["u1"]))
        assert answer.failure == "connect" and _verdict(answer) == ("fail", "connection"), kind


def test_server_closing_mid_request_is_after_send() -> None:
    async def close_after_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await _read_request(reader)
        writer.close()

    for kind in ("aiohttp", "raw"):
        (answer,) = _run(
            _with_server(close_after_reading, lambda url, k=kind: _buys(k, url, "p", ["u1"]))
        )
        assert answer.failure == "reset" and _verdict(answer) == ("info", "connection"), kind


def test_partial_answer_then_close_is_after_send() -> None:
    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await _read_request(reader)
        writer.write(_response("200 OK", b'{"orderId":"o1","remaining":3}')[:-10])
        await writer.drain()
        writer.close()

    (answer,) = _run(_with_server(half_answer, lambda url: _buys("raw", url, "p", ["u1"])))
    assert answer.failure == "reset" and _verdict(answer)[0] == "info"


def test_timeout_is_after_send_and_frees_the_connection() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await _read_request(reader)
        await asyncio.sleep(10)

    for kind in ("aiohttp", "raw"):
        # connections=1: the second request only gets out if the first freed its slot.
        answers = _run(
            _with_server(
                never_answer,
                lambda url, k=kind: _buys(k, url, "p", ["u1", "u2"], connections=1, timeout=0.3),
            )
        )
        assert [a.failure for a in answers] == ["timeout", "timeout"], kind
        assert {_verdict(a) for a in answers} == {("info", "timeout")}


def test_keep_alive_reuse_connection_close_and_reconnect() -> None:
    connections: list[int] = []

    def server(close_every: int) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
            connections.append(1)
            served = 0
            try:
                while True:
                    await _read_request(reader)
                    served += 1
                    last = served == close_every
                    extra = ("Connection: close",) if last else ()
                    writer.write(_response("200 OK", b'{"orderId":"o","remaining":5}', *extra))
                    await writer.drain()
                    if last:
                        break
            except asyncio.IncompleteReadError:
                pass
            writer.close()

        return handle

    for close_every, expected in ((100, 1), (2, 3), (1, 5)):
        connections.clear()
        answers = _run(
            _with_server(
                server(close_every),
                lambda url: _buys("raw", url, "p", [f"u{i}" for i in range(5)], connections=1),
            )
        )
        assert [(a.status, a.code, a.remaining) for a in answers] == [(200, "ok", 5)] * 5
        assert len(connections) == expected, close_every


def test_retry_after_and_chunked_body() -> None:
    async def busy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await _read_request(reader)
        body = b'{"code":"busy","message":"lost the race"}'
        chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        head = _response("409 Conflict", b"", "Retry-After: 0.25", "Transfer-Encoding: chunked")
        writer.write(head + chunked)
        await writer.drain()

    (answer,) = _run(_with_server(busy, lambda url: _buys("raw", url, "p", ["u1"])))
    assert (answer.status, answer.code, answer.retry_after_s) == (409, "busy", 0.25)
    assert _verdict(answer) == ("fail", "busy")


def test_pool_is_bounded_and_waiting_for_it_is_part_of_the_request() -> None:
    open_now, peak, served = [0], [0], [0]

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        open_now[0] += 1
        peak[0] = max(peak[0], open_now[0])
        try:
            while True:
                await _read_request(reader)
                await asyncio.sleep(0.05)
                served[0] += 1
                writer.write(_response("200 OK", b'{"orderId":"o","remaining":1}'))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now[0] -= 1
            writer.close()

    async def burst(url: str) -> list[Answer]:
        client = RawClient(url, "p", 2, TIMEOUT_S)
        try:
            return await asyncio.gather(*(client.buy(f"u{i}") for i in range(8)))
        finally:
            await client.close()

    answers = _run(_with_server(slow, burst))
    assert [a.status for a in answers] == [200] * 8 and served[0] == 8
    assert peak[0] == 2


def test_pool_wait_past_the_deadline_is_never_sent() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await _read_request(reader)
        await asyncio.sleep(10)

    async def wait_for_a_held_connection(url: str) -> Answer:
        client = RawClient(url, "p", 1, 0.3)
        pool = client._pool
        # Hold the only connection well past the request's deadline (deterministic: no race
        # between one request's timeout freeing the slot and the other's deadline).
        held = await pool._acquire(pool.loop.time() + 5)
        try:
            return await client.buy("u2")
        finally:
            pool._release(held)
            await client.close()

    answer = _run(_with_server(never_answer, wait_for_a_held_connection))
    assert answer.failure == "connect"  # waited for the only connection: never sent
    assert answer.status == 0


def test_cancelled_request_frees_its_connection() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            await _read_request(reader)
            await asyncio.sleep(10)
        except asyncio.IncompleteReadError:
            pass

    async def cancel_then_buy(url: str) -> Answer:
        client = RawClient(url, "p", 1, 0.3)
        try:
            task = asyncio.ensure_future(client.buy("u1"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await client.buy("u2")  # the slot came back: it is sent (and times out)
        finally:
            await client.close()

    answer = _run(_with_server(never_answer, cancel_then_buy))
    assert answer.failure == "timeout"


@pytest.mark.parametrize(
    "url", ["http://192.0.2.10:8080", "http://example.invalid", "https://127.0.0.1:8443"]
)
def test_non_loopback_targets_are_refused(url: str) -> None:
    async def build() -> None:
        RawClient(url, "p", 4, TIMEOUT_S)

    with pytest.raises(ValueError, match="raw client"):
        _run(build())


def test_header_injection_is_refused() -> None:
    async def build() -> None:
        client = RawClient(f"http://127.0.0.1:{_free_port()}", "p", 1, TIMEOUT_S)
        try:
            await client.buy("u1\r\nx-evil: 1")
        finally:
            await client.close()

    with pytest.raises(ValueError, match="line break"):
        _run(build())
