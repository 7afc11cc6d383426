"""A lean HTTP/1.1 keep-alive client for one loopback host:port, on asyncio Protocols (uvloop).

Why it exists: the shopper sends one kind of request (POST /api/v1/shop/buy, differing only in
x-user-id) to one loopback nginx. A general client (aiohttp) pays for URL handling, header
multidicts, cookie jars, tracing hooks and stream readers on every request; here a request is one
bytes join of a pre-encoded template and a response is parsed by httptools (C) into status,
Retry-After and the body, nothing else.

What it does:
- a bounded pool of persistent connections (at most `limit`, opened on demand, reused LIFO);
  waiting for a free connection happens inside `send`, so it counts as invoke delay exactly as
  aiohttp's connector limit does;
- a per-request deadline (`timeout_s` from the start of `send`): if it passes before the request
  was written (pool wait, connect) the failure is `ConnectFailed`, after that `RequestTimeout`;
- `Connection: close` (and HTTP/1.0 answers) retire the connection after the response; a peer
  close or reset after sending is `ConnectionDropped`; a closed idle connection is dropped from
  the pool and a new one is opened by the next request;
- loopback only: a base URL whose host does not resolve to loopback addresses is refused (no TLS,
  no proxies, no redirects, no DNS at request time).

Errors: `ConnectFailed` (never sent), `RequestTimeout` and `ConnectionDropped` (sent; the server
may have processed it). Cancelling `send` closes the connection it was using.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import socket
from typing import cast
from urllib.parse import urlsplit

import httptools

from flashlab.core.errors import InfraError

MAX_BODY = 1 << 20  # our API answers in < 200 bytes; anything this big is not our API


class RawHttpError(InfraError):
    """Base of the three ways a request can fail without an HTTP answer."""


class ConnectFailed(RawHttpError):
    """The request was never sent: refused, connect timeout, no free connection in time."""


class RequestTimeout(RawHttpError):
    """The request was sent and no complete answer arrived before the deadline."""


class ConnectionDropped(RawHttpError):
    """The request was sent, then the connection was closed or reset before a complete answer."""


def loopback_address(base_url: str) -> tuple[str, int, str, str]:
    """(connect address, port, Host header value, path prefix) of an http:// loopback base URL."""
    parts = urlsplit(base_url)
    if parts.scheme != "http":
        raise ValueError(f"raw client: only http:// URLs are supported, not {base_url!r}")
    host, port = parts.hostname, parts.port or 80
    if not host:
        raise ValueError(f"raw client: no host in {base_url!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"raw client: cannot resolve {host!r}: {exc}") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise ValueError(
            f"raw client: {host!r} is not a loopback host ({', '.join(addresses)}); "
            "the raw client only talks to a local stack - use client aiohttp for remote targets"
        )
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return addresses[0], port, netloc, parts.path.rstrip("/")


class RequestTemplate:
    """A request pre-encoded around one header value: `render(v)` is a single bytes join."""

    __slots__ = ("_head", "_tail")

    def __init__(
        self,
        method: str,
        target: str,
        host: str,
        headers: dict[str, str],
        body: bytes,
        varying_header: str,
    ) -> None:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self._head = ("\r\n".join(lines) + f"\r\n{varying_header}: ").encode("latin-1")
        self._tail = b"\r\n\r\n" + body

    def render(self, value: str) -> bytes:
        if "\r" in value or "\n" in value:
            raise ValueError(f"header value with a line break: {value!r}")
        return b"".join((self._head, value.encode("latin-1"), self._tail))


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    __slots__ = (
        "body",
        "closed",
        "counted",
        "keep_alive",
        "parser",
        "pool",
        "retry_after",
        "status",
        "transport",
        "waiter",
    )

    def __init__(self, pool: LoopbackPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.counted = True  # holds one of the pool's `limit` slots
        self.status = 0
        self.body = b""
        self.retry_after: str | None = None
        self.keep_alive = True

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's is a Transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: this connection cannot be trusted
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionDropped(f"bad HTTP response: {exc}"))
            self.abort()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        why = f"{type(exc).__name__}: {exc}" if exc else "server closed the connection"
        self._fail(ConnectionDropped(why))
        self.pool._lost(self)

    # -- httptools callbacks -------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 11 and name.lower() == b"retry-after":
            self.retry_after = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > MAX_BODY:
            self._fail(ConnectionDropped("response body too large"))
            self.abort()

    def on_message_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- helpers -------------------------------------------------------------------------------
    def begin(self) -> asyncio.Future[None]:
        self.status, self.body, self.retry_after = 0, b"", None
        self.waiter = waiter = self.pool.loop.create_future()
        return waiter

    def _fail(self, exc: BaseException) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(RequestTimeout("no answer before the request timeout"))


class LoopbackPool:
    """At most `limit` keep-alive connections to one loopback host:port; one request each at a time.

    Construct inside the event loop that will use it."""

    def __init__(self, base_url: str, limit: int, timeout_s: float) -> None:
        if limit < 1:
            raise ValueError("raw client: the connection limit must be >= 1")
        self.loop = asyncio.get_running_loop()
        self.address, self.port, self.host_header, self.path_prefix = loopback_address(base_url)
        self.limit = limit
        self.timeout_s = timeout_s
        self._open = 0  # connections open or being opened (<= limit)
        self._idle: list[_Conn] = []  # LIFO: the warmest connection first
        self._waiters: collections.deque[asyncio.Future[_Conn | None]] = collections.deque()
        self._all: set[_Conn] = set()
        self._closing = False

    def template(
        self, method: str, path: str, headers: dict[str, str], body: bytes, varying_header: str
    ) -> RequestTemplate:
        target = self.path_prefix + path
        return RequestTemplate(method, target, self.host_header, headers, body, varying_header)

    async def send(self, request: bytes) -> tuple[int, bytes, str | None]:
        """Send one pre-encoded request; (status, body, Retry-After) of its complete answer."""
        loop = self.loop
        deadline = loop.time() + self.timeout_s
        conn = await self._acquire(deadline)
        waiter = conn.begin()
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            conn.transport.write(request)  # type: ignore[union-attr]
            await waiter
        except BaseException:  # timeout, dropped, cancelled: the connection's state is unknown
            timer.cancel()
            conn.waiter = None
            self._drop(conn)
            raise
        timer.cancel()
        conn.waiter = None
        answer = (conn.status, conn.body, conn.retry_after)
        self._release(conn)
        return answer

    async def close(self) -> None:
        self._closing = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectFailed("client closed"))
        for conn in list(self._all):
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let transports run connection_lost

    # -- pool ----------------------------------------------------------------------------------
    async def _acquire(self, deadline: float) -> _Conn:
        while True:
            conn = await self._acquire_once(deadline)
            if not conn.closed:
                return conn
            self._drop(conn)  # closed while being handed over: never used, try again

    async def _acquire_once(self, deadline: float) -> _Conn:
        if self._closing:
            raise ConnectFailed("client closed")
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        if self._open < self.limit:
            self._open += 1
            return await self._connect(deadline)
        waiter: asyncio.Future[_Conn | None] = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                granted = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._hand_back(waiter.result())  # granted, then timed out/cancelled: return it
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise ConnectFailed("no free connection before the request timeout") from None
            raise
        if granted is None:  # a slot was freed for us: open a connection in it
            return await self._connect(deadline)
        return granted

    async def _connect(self, deadline: float) -> _Conn:
        """Open a connection in a slot already counted in `_open`."""
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await self.loop.create_connection(
                    lambda: _Conn(self), self.address, self.port
                )
        except BaseException as exc:
            self._free_slot()
            if isinstance(exc, TimeoutError):
                raise ConnectFailed("connect timeout") from None
            if isinstance(exc, OSError):
                raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
            raise
        self._all.add(conn)
        if self._closing:
            self._drop(conn)
            raise ConnectFailed("client closed")
        return conn

    def _release(self, conn: _Conn) -> None:
        if conn.closed or not conn.keep_alive or self._closing:
            self._drop(conn)
        else:
            self._hand_back(conn)

    def _hand_back(self, conn: _Conn | None) -> None:
        """A healthy connection (or a bare slot, None) goes to the first waiter, else idles."""
        if conn is None:
            self._free_slot()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _drop(self, conn: _Conn) -> None:
        if not conn.closed:
            conn.abort()
        self._all.discard(conn)
        if conn.counted:
            conn.counted = False
            self._free_slot()

    def _free_slot(self) -> None:
        self._open -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)  # the waiter connects in this slot
                return

    def _lost(self, conn: _Conn) -> None:
        """connection_lost: an idle connection leaves the pool; a busy one is dropped by send."""
        if conn.waiter is None:
            if conn in self._idle:
                self._idle.remove(conn)
            self._drop(conn)
