"""The forwarding server: accepts clients, connects each to the upstream, applies the toxics to every chunk.

Every client connection gets its own upstream connection; two pumps copy bytes each way, and each
chunk first passes the toxics that apply to its direction (blackhole swallows it, timeout drops
the connection after `ms`, latency delays it, bandwidth paces it). A reset toxic drops every
live connection when added and resets new ones with its probability. The toxics apply at the
next chunk, so adding one mid-run acts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass
from typing import Any

from flashlab.chaos.proxy.toxics import Toxic

CHUNK = 65_536


@dataclass
class Stats:
    connections_total: int = 0
    connections_active: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    resets: int = 0  # connections we aborted (reset toxic) plus upstream connect failures
    upstream_errors: int = 0


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, so the peer sees 'connection reset', as a real network drop."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Conn:
    """One client connection and its upstream twin."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.closed = False

    def reset(self) -> None:
        self.closed = True
        _abort_with_rst(self.client)
        if self.upstream is not None:
            _abort_with_rst(self.upstream)


class Proxy:
    """The forwarding server from `listen` to `upstream`, with its toxics by name and its stats."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.listen = listen
        self.upstream = upstream
        self.toxics: dict[str, Toxic] = {}
        self.stats = Stats()
        self._conns: set[_Conn] = set()
        self._server: asyncio.Server | None = None

    # toxics ----------------------------------------------------------------------------------

    def add_toxic(self, toxic: Toxic) -> None:
        if toxic.name in self.toxics:
            raise KeyError(toxic.name)
        self.toxics[toxic.name] = toxic
        if toxic.type == "reset":
            # A reset toxic means "the network dropped": every current connection goes first.
            for conn in list(self._conns):
                self.stats.resets += 1
                conn.reset()

    def remove_toxic(self, name: str) -> bool:
        return self.toxics.pop(name, None) is not None

    def _active(self, direction: str) -> list[Toxic]:
        return [t for t in self.toxics.values() if t.applies(direction)]

    # connections -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.listen[0], self.listen[1], reuse_address=True, backlog=1024
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.reset()

    def _should_reset_new(self) -> bool:
        return any(
            t.type == "reset" and t.rng.random() < t.params.probability
            for t in self.toxics.values()
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections_total += 1
        if self._should_reset_new():
            self.stats.resets += 1
            _abort_with_rst(writer)
            return
        conn = _Conn(writer)
        self._conns.add(conn)
        self.stats.connections_active += 1
        try:
            await self._serve(conn, reader, writer)
        finally:
            self._conns.discard(conn)
            self.stats.connections_active -= 1
            for w in (writer, conn.upstream):
                if w is not None and not w.is_closing():
                    w.close()

    async def _serve(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            # Upstream down (e.g. Redis killed): close with FIN, as toxiproxy and most TCP proxies
            # do. The client already has an accepted connection; it sees EOF on its first read.
            self.stats.upstream_errors += 1
            writer.close()
            return
        conn.upstream = up_writer
        if conn.closed:  # a reset toxic arrived while we were connecting
            _abort_with_rst(up_writer)
            return
        await asyncio.gather(
            self._pump(conn, reader, up_writer, "up"),
            self._pump(conn, up_reader, writer, "down"),
            return_exceptions=True,
        )

    async def _pump(
        self,
        conn: _Conn,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        try:
            while not conn.closed:
                data = await src.read(CHUNK)
                if not data:
                    break
                if await self._forward(conn, data, dst, direction):
                    continue
                break
        except (ConnectionError, OSError):
            conn.reset()
            return
        # Propagate EOF (half close) so protocols that rely on it still work.
        if not conn.closed and dst.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                dst.write_eof()

    async def _forward(
        self, conn: _Conn, data: bytes, dst: asyncio.StreamWriter, direction: str
    ) -> bool:
        """Apply the toxics to one chunk and write it; False ends the connection."""
        toxics = self._active(direction)
        for toxic in toxics:
            if toxic.type == "blackhole":
                return True  # swallowed: read, never forwarded, never answered
            if toxic.type == "timeout":
                if toxic.params.ms > 0:
                    await asyncio.sleep(toxic.params.ms / 1000)
                    conn.reset()
                    return False
                return True
        delay = sum(_latency_s(t) for t in toxics if t.type == "latency")
        if delay > 0:
            await asyncio.sleep(delay)
        rates = [t.params.kb_per_s for t in toxics if t.type == "bandwidth"]
        if conn.closed:
            return False
        if rates:
            await self._write_throttled(data, dst, min(rates) * 1024)
        else:
            dst.write(data)
            await dst.drain()
        self._count(direction, len(data))
        return True

    async def _write_throttled(self, data: bytes, dst: asyncio.StreamWriter, rate: float) -> None:
        # Slices of ~1/20 s worth of bytes keep the pacing smooth without a timer per byte.
        step = max(1, int(rate / 20))
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            dst.write(piece)
            await dst.drain()
            await asyncio.sleep(len(piece) / rate)

    def _count(self, direction: str, n: int) -> None:
        if direction == "up":
            self.stats.bytes_up += n
        else:
            self.stats.bytes_down += n

    def stats_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "listen": f"{self.listen[0]}:{self.listen[1]}",
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "connections_total": s.connections_total,
            "connections_active": s.connections_active,
            "bytes_up": s.bytes_up,
            "bytes_down": s.bytes_down,
            "resets": s.resets,
            "upstream_errors": s.upstream_errors,
            "toxics": sorted(self.toxics),
        }


def _latency_s(toxic: Toxic) -> float:
    ms = toxic.params.ms
    if toxic.params.jitter_ms:
        ms += toxic.rng.uniform(-toxic.params.jitter_ms, toxic.params.jitter_ms)
    return max(0.0, ms) / 1000
