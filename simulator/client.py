"""The shopper HTTP client: one purchase attempt in, one `Answer` out.

Over aiohttp (default), httpx or `raw` (flashlab.simulator.rawhttp: a lean keep-alive client for
loopback targets only).

Every client also speaks the waiting-room protocol of strategy `queue`: `queue(user_id)` is
`POST /api/v1/shop/queue` (join, or refresh the user's ticket: the poll), answered with the
ticket's state in `Answer.queue` (a `QueueTicket`).

A backend the lab did not build (a target file, flashlab.core.target) is spoken to by
`TargetClient` (aiohttp): its own request, rendered per attempt, and its answers read by the
file's rules into an outcome, whose verdict travels on `Answer.verdict`.

All implementations share one interface so the engines can swap them (`client: httpx`) and the
CPU cost of each stays measurable. Client-side failures are reduced to the four kinds that
`flashlab.simulator.behaviour` classifies: connect (never sent), timeout, reset (sent, then dropped),
cancelled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from typing import Protocol

import orjson

from flashlab.core.answers import AnswerReader
from flashlab.core.answers import build_request
from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import QUEUE_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.core.target import TargetRequest
from flashlab.simulator import CLIENTS
from flashlab.simulator.behaviour import OUTCOME_VERDICTS
from flashlab.simulator.behaviour import Failure
from flashlab.simulator.behaviour import Verdict

# The clients that implement `queue()` (the waiting-room protocol of strategy `queue`): today
# all of them; a new client that does not must stay out, and the lab refuses it for `queue`.
QUEUE_CLIENTS = tuple(CLIENTS)


@dataclass(slots=True)
class QueueTicket:
    """A waiting-room answer (200 from the queue endpoint): the ticket's state and its place."""

    state: str  # flashlab.core.contract.QueueState's values
    ticket: int | None = None
    position: int | None = None  # tickets ahead (waiting only)
    expires_in_ms: int | None = None  # what is left of an admission


@dataclass(slots=True)
class Answer:
    status: int  # 0 when no HTTP answer arrived
    code: str | None = None  # body `code`, "ok" on 200
    order_id: str | None = None
    remaining: int | None = None
    retry_after_s: float | None = None
    maybe_committed: bool = False
    failure: Failure | None = None
    error: str | None = None
    queue: QueueTicket | None = None  # waiting-room answers only
    # Set by a client that already knows what the answer means (a target's rules); else the
    # shopper classifies status + code (flashlab.simulator.behaviour.classify).
    verdict: Verdict | None = None


def parse_answer(status: int, body: bytes, retry_after: str | None) -> Answer:
    """Turn a status + raw body into an Answer; non-JSON bodies (nginx error pages) keep code None."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return Answer(status, error=f"HTTP {status} without a JSON body")
    ra = _retry_after(retry_after)
    precise = data.get("retryAfterMs")  # 429 rate_limited: the header rounds up to seconds
    if isinstance(precise, int) and precise >= 0:
        ra = precise / 1000.0
    if status == 200 and isinstance(data.get("state"), str):
        return _queue_answer(data)
    if status == 200:
        remaining = data.get("remaining")
        return Answer(
            200, "ok", data.get("orderId"), remaining if isinstance(remaining, int) else None
        )
    code = data.get("code")
    return Answer(
        status,
        code if isinstance(code, str) else None,
        retry_after_s=ra,
        maybe_committed=data.get("maybeCommitted") is True,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _queue_answer(data: dict[str, object]) -> Answer:
    return Answer(
        200,
        "queue",
        queue=QueueTicket(
            str(data["state"]),
            _int_or_none(data.get("ticket")),
            _int_or_none(data.get("position")),
            _int_or_none(data.get("expiresInMs")),
        ),
    )


_Raw = tuple[int, bytes, str | None]


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # HTTP-date form: not used by our API


class ShopperClient(Protocol):
    async def buy(self, user_id: str, attempt: int = 1) -> Answer: ...

    async def queue(self, user_id: str) -> Answer: ...

    async def close(self) -> None: ...


class _JsonPostClient:
    """What the general-purpose HTTP clients share: the two endpoints, the one JSON body, the
    headers of a shopper's POST; `_post` is the library's own."""

    def __init__(self, base_url: str, product_id: str) -> None:
        self._url = base_url.rstrip("/") + BUY_PATH
        self._queue_url = base_url.rstrip("/") + QUEUE_PATH
        self._body = orjson.dumps({"productId": product_id})

    @staticmethod
    def _headers(user_id: str) -> dict[str, str]:
        return {USER_HEADER: user_id, "content-type": "application/json"}

    async def buy(self, user_id: str, attempt: int = 1) -> Answer:
        return await self._post(self._url, user_id)

    async def queue(self, user_id: str) -> Answer:
        return await self._post(self._queue_url, user_id)

    async def _post(self, url: str, user_id: str) -> Answer:
        raise NotImplementedError


class AiohttpClient(_JsonPostClient):
    """aiohttp session with a bounded keep-alive pool (limit = connections)."""

    def __init__(self, base_url: str, product_id: str, connections: int, timeout_s: float) -> None:
        # start-up cost: only this path pays for aiohttp
        import aiohttp

        super().__init__(base_url, product_id)
        self._aiohttp = aiohttp
        connector = aiohttp.TCPConnector(
            limit=connections, limit_per_host=connections, ttl_dns_cache=300, keepalive_timeout=30
        )
        # sock_connect separates "never sent" (connect timeout) from "sent, no answer" (total).
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            json_serialize=lambda o: orjson.dumps(o).decode(),
            skip_auto_headers=("User-Agent",),
        )

    async def _post(self, url: str, user_id: str) -> Answer:
        got = await self._request("POST", url, data=self._body, headers=self._headers(user_id))
        return got if isinstance(got, Answer) else parse_answer(*got)

    async def _request(self, method: str, url: str, **kwargs: Any) -> Answer | _Raw:
        """(status, body, Retry-After) of one request, or the Answer saying how it failed."""
        aiohttp = self._aiohttp
        try:
            async with self._session.request(method, url, **kwargs) as resp:
                body = await resp.read()
                return resp.status, body, resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return Answer(0, failure="connect", error=_err(exc))
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            return Answer(0, failure="timeout", error=_err(exc) or "timeout")
        except (aiohttp.ClientError, OSError) as exc:  # disconnected, reset, payload cut short
            return Answer(0, failure="reset", error=_err(exc))

    async def close(self) -> None:
        await self._session.close()


class HttpxClient(_JsonPostClient):
    """httpx.AsyncClient with the same pool bound; slower, kept to measure the difference."""

    def __init__(self, base_url: str, product_id: str, connections: int, timeout_s: float) -> None:
        # start-up cost: only this path pays for httpx, rich
        import httpx

        super().__init__(base_url, product_id)
        self._httpx = httpx
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s))

    async def _post(self, url: str, user_id: str) -> Answer:
        httpx = self._httpx
        headers = self._headers(user_id)
        try:
            resp = await self._client.post(url, content=self._body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Answer(0, failure="connect", error=_err(exc))
        except httpx.TimeoutException as exc:  # read/write timeout: the request may be in
            return Answer(0, failure="timeout", error=_err(exc) or "timeout")
        except (httpx.TransportError, OSError) as exc:
            return Answer(0, failure="reset", error=_err(exc))
        return parse_answer(resp.status_code, resp.content, resp.headers.get("retry-after"))

    async def close(self) -> None:
        await self._client.aclose()


class RawClient:
    """flashlab.simulator.rawhttp: pre-encoded request, httptools parsing, bounded keep-alive pool.

    Loopback targets only (a non-loopback base URL is refused at construction). Unlike aiohttp,
    running out of time before the request was written (pool wait, connect) is `connect` (never
    sent), not `timeout`."""

    def __init__(self, base_url: str, product_id: str, connections: int, timeout_s: float) -> None:
        # start-up cost: only this path pays for httptools
        from flashlab.simulator import rawhttp

        self._rawhttp = rawhttp
        self._pool = rawhttp.LoopbackPool(base_url, connections, timeout_s)
        body = orjson.dumps({"productId": product_id})
        headers = {"Content-Type": "application/json"}
        self._request = self._pool.template("POST", BUY_PATH, headers, body, USER_HEADER).render
        self._queue_request = self._pool.template(
            "POST", QUEUE_PATH, headers, body, USER_HEADER
        ).render
        self._send = self._pool.send

    async def buy(self, user_id: str, attempt: int = 1) -> Answer:
        return await self._post(self._request(user_id))

    async def queue(self, user_id: str) -> Answer:
        return await self._post(self._queue_request(user_id))

    async def _post(self, request: bytes) -> Answer:
        rawhttp = self._rawhttp
        try:
            status, body, retry_after = await self._send(request)
        except rawhttp.ConnectFailed as exc:
            return Answer(0, failure="connect", error=_err(exc))
        except rawhttp.RequestTimeout as exc:
            return Answer(0, failure="timeout", error=_err(exc))
        except (rawhttp.ConnectionDropped, OSError) as exc:
            return Answer(0, failure="reset", error=_err(exc))
        return parse_answer(status, body, retry_after)

    async def close(self) -> None:
        await self._pool.close()


class TargetClient(AiohttpClient):
    """A backend the lab did not build: its own request (flashlab.core.target.Buy), rendered per
    attempt with `{user}`, `{attempt}` and `{product}`, and its answers read by its rules. The
    outcome's verdict rides on the Answer; an answer no rule matches is `unknown` (indeterminate)
    and keeps its status and a body excerpt in `error`. No waiting-room protocol."""

    def __init__(
        self,
        base_url: str,
        product_id: str,
        connections: int,
        timeout_s: float,
        target: TargetRequest,
    ) -> None:
        super().__init__(base_url, product_id, connections, timeout_s)
        self._base = base_url.rstrip("/")
        self._product = product_id
        self._buy = target.buy
        self._reader = AnswerReader(target.answers)

    async def buy(self, user_id: str, attempt: int = 1) -> Answer:
        values = {"product": self._product, "user": user_id, "attempt": attempt}
        req = build_request(self._buy, values)
        got = await self._request(
            req.method, self._base + req.path, headers=req.headers, params=req.params, data=req.body
        )
        if isinstance(got, Answer):
            return got
        status, body, retry_after = got
        reading = self._reader.read(status, body)
        return Answer(
            status,
            reading.code,
            reading.order_id,
            reading.remaining,
            retry_after_s=_retry_after(retry_after),
            error=reading.note,
            verdict=OUTCOME_VERDICTS[reading.outcome.value],
        )

    async def queue(self, user_id: str) -> Answer:
        raise NotImplementedError("a target file has no waiting-room protocol")


def _err(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


# The clients that can speak a target file's own request (flashlab.core.target): aiohttp.
TARGET_CLIENTS = ("aiohttp",)


def make_client(
    kind: str,
    base_url: str,
    product_id: str,
    connections: int,
    timeout_s: float,
    target: TargetRequest | None = None,
) -> ShopperClient:
    """Build a client; must be called inside the event loop that will use it."""
    factory = CLIENTS.load(kind)  # ValueError: unknown client 'x' (allowed: ...)
    asyncio.get_running_loop()  # fail early, clearly, outside a loop
    if target is not None:
        if kind not in TARGET_CLIENTS:
            raise ValueError(f"client: {kind} cannot speak a target file's request (use aiohttp)")
        return TargetClient(base_url, product_id, connections, timeout_s, target)
    client: ShopperClient = factory(base_url, product_id, connections, timeout_s)
    return client
