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
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.connection import Connection
from redis.asyncio.connection import UnixDomainSocketConnection
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

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
        await self.redis.aclose()
        await self.pool.aclose()


def pack_bulk(*args: bytes) -> bytes:
    """RESP-encode bulk strings (no array header): used to pre-pack constant command prefixes."""
    return b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def execute_packed(redis: aioredis.Redis, packed: bytes) -> Any:
    """Send one pre-packed command on a pooled connection and return its parsed reply.

    The hot purchase path uses this instead of `redis.execute_command`: same pool, timeouts and
    hiredis parser, without per-call argument encoding and the client's retry/observability
    layers (retries are disabled anyway). Error replies raise like redis-py (NoScriptError, ...).
    """
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()
    except rex.ResponseError:
        raise  # a complete error reply: the connection is still in sync
    except BaseException:
        # Anything else (timeout, reset, cancellation) may leave a reply in flight: never reuse.
        await conn.disconnect(nowait=True)
        raise
    finally:
        await pool.release(conn)
