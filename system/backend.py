"""The API's Redis connection: one bounded, retry-free pool per worker, and the mapping of Redis failures to 503s.

Why no retries: a retried write could apply twice (a purchase is not idempotent), so every
Redis failure surfaces once, as 503 `backend_unavailable`. Whether that 503 is indeterminate
(`maybeCommitted`) is tracked per request: strategies `arm()` the tracker right before their
first purchase write, and the connection class marks the tracker when bytes actually leave
for Redis. Connection refused / pool exhausted happen before any byte is sent -> not committed.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.connection import Connection
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.connection import UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from flashlab.system.settings import Settings

# Everything the API treats as "the backend is unavailable" (never a 500).
BACKEND_ERRORS: tuple[type[Exception], ...] = (rex.RedisError, OSError, asyncio.TimeoutError)


@dataclass(slots=True)
class WriteTracker:
    """Per-request: has a purchase write possibly reached Redis?"""

    armed: bool = False
    sent: bool = False


_TRACKER: contextvars.ContextVar[WriteTracker | None] = contextvars.ContextVar(
    "flashlab_write_tracker", default=None
)


def begin_request() -> WriteTracker:
    """Start tracking writes for the current request (each asyncio task has its own context)."""
    tracker = WriteTracker()
    _TRACKER.set(tracker)
    return tracker


def arm() -> None:
    """Called by a strategy right before it sends its first purchase-side write."""
    tracker = _TRACKER.get()
    if tracker is not None:
        tracker.armed = True


def disarm() -> None:
    """Called when the armed write is known not to have applied (e.g. EXEC aborted by WATCH)."""
    tracker = _TRACKER.get()
    if tracker is not None:
        tracker.armed = tracker.sent = False


def maybe_committed() -> bool:
    tracker = _TRACKER.get()
    return tracker is not None and tracker.sent


class _TrackingMixin(AbstractConnection):
    """Marks the request's tracker once a command is about to be written to a connected socket."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            # Connect first: a refused connect must not count as "sent".
            await self.connect_check_health(check_health=False)
        tracker = _TRACKER.get()
        if tracker is not None and tracker.armed:
            tracker.sent = True
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:
            raise _closed_transport(exc) from exc

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except RuntimeError as exc:
            await self.disconnect(nowait=True)
            raise _closed_transport(exc) from exc


def _closed_transport(exc: RuntimeError) -> rex.ConnectionError:
    # uvloop raises RuntimeError ("unable to perform operation on <TCPTransport closed=True>")
    # instead of an OSError when the socket died under a pending operation, e.g. a reset
    # from the fault proxy. It is a connection failure like any other: 503, never 500.
    return rex.ConnectionError(f"connection closed during I/O ({exc})")


class TrackingConnection(_TrackingMixin, Connection):
    pass


class TrackingUnixConnection(_TrackingMixin, UnixDomainSocketConnection):
    pass


def error_kind(exc: BaseException) -> str:
    """A short label for flashlab_redis_errors_total{kind}."""
    if isinstance(exc, rex.BusyLoadingError):
        return "loading"
    if isinstance(exc, rex.ConnectionError) and "No connection available" in str(exc):
        return "pool_exhausted"
    if isinstance(exc, rex.TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, rex.ConnectionError | OSError):
        return "connection"
    if isinstance(exc, rex.ResponseError):
        return "response"
    return "other"


class Backend:
    """Owns the worker's Redis client. Every call is bounded by the settings' timeout."""

    def __init__(self, settings: Settings) -> None:
        timeout = settings.redis_timeout_s
        connection_class = (
            TrackingUnixConnection
            if settings.redis_url.startswith("unix://")
            else TrackingConnection
        )
        self.timeout_s = timeout
        self.pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            connection_class=connection_class,
            max_connections=settings.redis_pool_size,
            timeout=timeout,  # waiting for a free pooled connection
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            driver_info=None,  # no CLIENT SETINFO round trips on every (re)connect
            # RESP2 and no maintenance notifications: redis-py 8 defaults to RESP3 with
            # notifications "auto", which also skips the pool's check-out test for dead
            # connections. With it, a connection Redis closed is detected at check-out, so
            # a write is never sent into a dead socket and reported as maybe-committed.
            protocol=2,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
            decode_responses=True,
        )
        self.redis: aioredis.Redis = aioredis.Redis(connection_pool=self.pool)

    async def ping(self) -> bool:
        """Readiness: PING answered within the timeout (pool wait + connect + reply)."""
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                return bool(await self.redis.ping())
        except BACKEND_ERRORS:
            return False

    async def close(self) -> None:
        lane = _LANES.pop(self.pool, None)
        if lane is not None:
            await lane.aclose()
        await self.redis.aclose()
        await self.pool.aclose()


def pack_bulk(*args: bytes) -> bytes:
    """RESP-encode bulk strings (no array header): used to pre-pack constant command prefixes."""
    return b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class PackedLane:
    """The purchase hot path's own connections to Redis: the pool's connection class and settings,
    without its per-command check-out.

    redis-py's blocking pool takes a condition and a lock, calls its observability hooks and runs a
    zero-timeout read on every check-out, and the same again on release: 15-30 µs of a worker's
    CPU per command, measured here against a direct connection (docs/BENCHMARKS.md, `ceiling`),
    more than the purchase's own Redis reply costs to parse. A lane keeps a stack of idle
    connections made by `pool.make_connection()` (the same class, timeouts and hiredis parser,
    so a purchase's write is tracked exactly as on the pool) and bounds them like the pool:
    at most `pool.max_connections` of its own (so a worker holds at most twice
    `redis_pool_size`), a full lane waits at most `pool.timeout`, then "No connection
    available." (pool_exhausted, 503, nothing sent). A connection Redis closed while idle (a
    restart) is seen at check-out through its stream's EOF and reconnected before anything is
    written, as the pool's check-out test does, so a write is never sent into a dead socket.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._idle: list[AbstractConnection] = []
        self._slots = asyncio.Semaphore(pool.max_connections)
        # A BlockingConnectionPool's bound on waiting for a connection (a plain pool: no wait).
        self._wait_s: float | None = getattr(pool, "timeout", 0.0)

    async def execute(self, packed: bytes) -> Any:
        """Send one pre-packed command and return its parsed reply (errors raise as redis-py's)."""
        await self._acquire()
        conn = self._idle.pop() if self._idle else self._pool.make_connection()
        try:
            if _closed_by_server(conn):
                await conn.disconnect(nowait=True)  # reconnected by send_packed_command
            await conn.send_packed_command(packed, check_health=False)
            return await conn.read_response()
        except rex.ResponseError:
            raise  # a complete error reply: the connection is still in sync
        except BaseException:
            # Anything else (timeout, reset, cancellation) may leave a reply in flight: never reuse.
            await conn.disconnect(nowait=True)
            raise
        finally:
            self._idle.append(conn)
            self._slots.release()

    async def _acquire(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns without suspending
            return
        try:
            async with asyncio.timeout(self._wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise rex.ConnectionError("No connection available.") from None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect(nowait=True)


def _closed_by_server(conn: AbstractConnection) -> bool:
    # redis-py keeps the asyncio StreamReader private; EOF on it means Redis closed the socket.
    reader = getattr(conn, "_reader", None)
    return reader is not None and reader.at_eof()


_LANES: weakref.WeakKeyDictionary[ConnectionPool, PackedLane] = weakref.WeakKeyDictionary()


def packed_lane(redis: aioredis.Redis) -> PackedLane:
    """The lane of this client's pool (one per pool, so one per worker)."""
    pool = redis.connection_pool
    lane = _LANES.get(pool)
    if lane is None:
        lane = _LANES[pool] = PackedLane(pool)
    return lane


async def execute_packed(redis: aioredis.Redis, packed: bytes) -> Any:
    """Send one pre-packed command through the client's PackedLane and return its parsed reply.

    The hot purchase path uses this instead of `redis.execute_command`: same connection class,
    timeouts and hiredis parser, without per-call argument encoding, the client's
    retry/observability layers (retries are disabled anyway) and the pool's check-out. Error
    replies raise like redis-py (NoScriptError, ...).
    """
    return await packed_lane(redis).execute(packed)
