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
from redis.asyncio.connection import BlockingConnectionPool, Connection, UnixDomainSocketConnection
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError as RedisConnectionError,
    RedisError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)
from redis.retry import Retry

from system.settings import Settings

# Everything the API treats as "the backend is unavailable" (never a 500).
BACKEND_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


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


def maybe_committed() -> bool:
    tracker = _TRACKER.get()
    return tracker is not None and tracker.sent


class _TrackingMixin:
    """Marks the request's tracker once a command is about to be written to a connected socket."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:  # type: ignore[attr-defined]
            # Connect first: a refused connect must not count as "sent".
            await self.connect_check_health(check_health=False)  # type: ignore[attr-defined]
        tracker = _TRACKER.get()
        if tracker is not None and tracker.armed:
            tracker.sent = True
        await super().send_packed_command(command, check_health)  # type: ignore[misc]


class TrackingConnection(_TrackingMixin, Connection):
    pass


class TrackingUnixConnection(_TrackingMixin, UnixDomainSocketConnection):
    pass


def error_kind(exc: BaseException) -> str:
    """A short label for flashlab_redis_errors_total{kind}."""
    if isinstance(exc, BusyLoadingError):
        return "loading"
    if isinstance(exc, RedisConnectionError) and "No connection available" in str(exc):
        return "pool_exhausted"
    if isinstance(exc, RedisTimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "connection"
    if isinstance(exc, ResponseError):
        return "response"
    return "other"


class Backend:
    """Owns the worker's Redis client. Every call is bounded by the settings' timeout."""

    def __init__(self, settings: Settings) -> None:
        timeout = settings.redis_timeout_s
        connection_class = (
            TrackingUnixConnection if settings.redis_url.startswith("unix://") else TrackingConnection
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
