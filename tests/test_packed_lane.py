"""The purchase hot path's PackedLane (flashlab.system.backend) against a real redis-server.

It skips the pool's check-out, so it must keep what that check-out guaranteed: bounded
connections with a bounded wait (then "No connection available.", nothing sent), a connection
Redis closed while idle is reconnected before anything is written (no purchase reported as
maybe-committed because of a restart), and a connection is never reused with a reply in flight.
Redis listens on a unix socket here, as it does for the local stack's API workers."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis
import uvloop
from redis import exceptions as rex
from support import poll

from flashlab.system import procs
from flashlab.system.backend import Backend
from flashlab.system.backend import arm
from flashlab.system.backend import begin_request
from flashlab.system.backend import execute_packed
from flashlab.system.backend import pack_bulk
from flashlab.system.backend import packed_lane
from flashlab.system.platforms import free_port
from flashlab.system.platforms.local import require_binary
from flashlab.system.settings import Settings


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + pack_bulk(*args)


class RedisServer:
    """A throwaway redis-server on a free loopback port and a unix socket; restartable."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.socket = folder / "r.sock"
        self.pid: int | None = None

    def start(self) -> None:
        argv = [require_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        argv += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        argv += ["--enable-debug-command", "local"]  # DEBUG SLEEP: a reply slower than a timeout
        self.pid = procs.spawn(argv, name="lane-redis", log_path=self.folder / "redis.log").pid
        poll(self._pings, "redis-server answering", 10)

    def stop(self) -> None:
        if self.pid is not None:
            procs.terminate(self.pid, grace=2.0)
            self.pid = None

    def _pings(self) -> bool:
        with contextlib.closing(sync_redis.Redis(unix_socket_path=str(self.socket))) as client:
            try:
                return bool(client.ping())
            except rex.RedisError:
                return False


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="lane-") as tmp:  # short: fits sockaddr_un
        srv = RedisServer(Path(tmp))
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


def _backend(server: RedisServer, pool_size: int = 4, timeout_ms: int = 300) -> Backend:
    return Backend(
        Settings(
            redis_url=f"unix://{server.socket}?db=0",
            redis_timeout_ms=timeout_ms,
            redis_pool_size=pool_size,
        )
    )


def test_commands_run_and_error_replies_keep_the_connection(server: RedisServer) -> None:
    async def scenario() -> tuple[list[object], int]:
        backend = _backend(server)
        try:
            replies = [
                await execute_packed(backend.redis, _command(b"INCR", b"n")) for _ in range(3)
            ]
            with pytest.raises(rex.ResponseError):
                await execute_packed(backend.redis, _command(b"NOSUCHCOMMAND"))
            replies.append(await execute_packed(backend.redis, _command(b"GET", b"n")))
            return replies, len(packed_lane(backend.redis)._idle)
        finally:
            await backend.close()

    replies, idle = uvloop.run(scenario())
    assert replies == [1, 2, 3, "3"]
    assert idle == 1  # sequential commands share one connection, the error reply included


def test_a_full_lane_waits_then_refuses_without_sending(server: RedisServer) -> None:
    async def scenario() -> tuple[bool, bool]:
        backend = _backend(server, pool_size=1, timeout_ms=400)
        try:
            # Three BLPOPs of 250 ms each (Redis ends them within ~100 ms of that, inside the
            # 400 ms socket timeout) hold the only connection one after the other for 750 ms or
            # more; the purchase, queued behind them at 20 ms, gives up at 420 ms.
            blpop = _command(b"BLPOP", b"nothing", b"0.25")
            holders = [asyncio.create_task(execute_packed(backend.redis, blpop)) for _ in "abc"]
            await asyncio.sleep(0.02)
            tracker = begin_request()
            arm()
            with pytest.raises(rex.ConnectionError, match="No connection available"):
                await execute_packed(backend.redis, _command(b"INCR", b"never"))
            sent = tracker.sent
            # The first holders time out empty-handed; the last may itself give up waiting.
            held = await asyncio.gather(*holders, return_exceptions=True)
            assert held[0] is None and held[1] is None
            value = await execute_packed(backend.redis, _command(b"GET", b"never"))
            return sent, value is None
        finally:
            await backend.close()

    sent, never_written = uvloop.run(scenario())
    assert not sent  # refused before a byte left: the purchase is certainly not committed
    assert never_written


def test_a_restart_while_idle_reconnects_before_writing(server: RedisServer) -> None:
    async def scenario() -> tuple[object, bool, object]:
        backend = _backend(server)
        try:
            first = await execute_packed(backend.redis, _command(b"INCR", b"k"))
            server.stop()
            server.start()  # no persistence: k is gone
            await asyncio.sleep(0.05)  # let the loop see the old connection's EOF
            tracker = begin_request()
            arm()
            second = await execute_packed(backend.redis, _command(b"INCR", b"k"))
            return first, tracker.sent, second
        finally:
            await backend.close()

    first, sent, second = uvloop.run(scenario())
    assert first == 1 and second == 1  # answered by the new server, not an error
    assert sent


def test_a_reply_cut_off_by_a_timeout_is_never_read_by_the_next_command(
    server: RedisServer,
) -> None:
    async def scenario() -> tuple[object, int]:
        backend = _backend(server, pool_size=1, timeout_ms=100)
        try:
            with pytest.raises((rex.TimeoutError, asyncio.TimeoutError)):
                # DEBUG SLEEP answers +OK after 0.3 s, beyond the 100 ms socket timeout.
                await execute_packed(backend.redis, _command(b"DEBUG", b"SLEEP", b"0.3"))
            await asyncio.sleep(0.4)
            echo = await execute_packed(backend.redis, _command(b"ECHO", b"mine"))
            return echo, len(packed_lane(backend.redis)._idle)
        finally:
            await backend.close()

    echo, idle = uvloop.run(scenario())
    assert echo == "mine"  # not the late "+OK" of the timed-out command
    assert idle == 1
