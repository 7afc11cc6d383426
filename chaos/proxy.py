"""The TCP fault proxy: forwards bytes between API workers and Redis, with toxics switchable at run time.

Run it as ``python -m flashlab.chaos.proxy --listen 127.0.0.1:P --upstream 127.0.0.1:R --control 127.0.0.1:C``.
The control port speaks a tiny JSON HTTP API (aiohttp.web):

    GET    /toxics          -> [{name, type, direction, params}, ...]
    POST   /toxics          {name, type, direction?, params?} -> 201 the toxic
    DELETE /toxics/{name}   -> 204 (404 if unknown)
    DELETE /toxics          -> 204, removes every toxic
    GET    /stats           -> connections, bytes, resets, listen/upstream addresses

Toxics (direction "up" = client->upstream, "down" = upstream->client, "both"):
latency {ms, jitter_ms, seed}, reset {probability, seed}, blackhole {}, bandwidth {kb_per_s},
timeout {ms}. They apply to live connections at the next chunk, so adding one mid-run acts at once.

Why hand-written instead of Shopify's toxiproxy: toxiproxy is not packaged in Debian and no image
registry is reachable, and the Python packages on PyPI are only clients for that Go server. The
proxy needs ~300 lines of asyncio; aiohttp (already a dependency) serves the control API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

import httpx
from aiohttp import web
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError

from flashlab.core.validation import first_error

Direction = Literal["up", "down", "both"]
CHUNK = 65_536


# --- toxic models -----------------------------------------------------------------------------


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The one home of the toxics' bounds and defaults: the network faults
# (flashlab.chaos.faults.network) build their Params on these models.
MAX_DELAY_MS = 60_000


class LatencyParams(_Params):
    ms: float = Field(default=100.0, ge=0, le=MAX_DELAY_MS, description="delay added per chunk")
    # uniform in [-jitter, +jitter], floor 0
    jitter_ms: float = Field(default=0.0, ge=0, le=MAX_DELAY_MS, description="uniform +/- spread")
    seed: int = Field(default=0, description="seed of the jitter's random stream")


class ResetParams(_Params):
    probability: float = Field(
        default=1.0, ge=0, le=1, description="chance each new connection is reset"
    )
    seed: int = Field(default=0, description="seed of the reset draw")


class BlackholeParams(_Params):
    pass


class BandwidthParams(_Params):
    # 16 KiB/s, the fault's long-standing default (what experiments ran with): a link that
    # slow visibly delays Redis replies; the proxy's former 64 was only ever its own fallback.
    kb_per_s: float = Field(default=16.0, gt=0, le=10_000_000, description="KiB/s limit")


class TimeoutParams(_Params):
    ms: float = Field(default=1_000.0, ge=0, le=600_000)  # drop data, close the connection after ms


TOXIC_PARAMS: dict[str, type[_Params]] = {
    "latency": LatencyParams,
    "reset": ResetParams,
    "blackhole": BlackholeParams,
    "bandwidth": BandwidthParams,
    "timeout": TimeoutParams,
}


class ToxicSpec(BaseModel):
    """What a client POSTs; `params` is validated against the type's own model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    type: Literal["latency", "reset", "blackhole", "bandwidth", "timeout"]
    direction: Direction = "both"
    params: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Toxic:
    name: str
    type: str
    direction: Direction
    params: Any  # one of the *Params models
    rng: random.Random = field(default_factory=random.Random)

    def applies(self, direction: str) -> bool:
        return self.direction in ("both", direction)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "direction": self.direction,
            "params": self.params.model_dump(),
        }


def parse_toxic(body: Any) -> Toxic:
    """Validate a POST body; raises ValueError with one line naming the bad field."""
    try:
        spec = ToxicSpec.model_validate(body)
    except ValidationError as exc:
        raise ValueError(first_error(exc, empty="body")) from None
    try:
        params = TOXIC_PARAMS[spec.type].model_validate(spec.params)
    except ValidationError as exc:
        raise ValueError(first_error(exc, prefix="params.", empty="body")) from None
    seed = getattr(params, "seed", 0)
    return Toxic(spec.name, spec.type, spec.direction, params, random.Random(seed))


# --- the proxy --------------------------------------------------------------------------------


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


# --- control API ------------------------------------------------------------------------------


def control_app(proxy: Proxy) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/toxics")
    async def list_toxics(_: web.Request) -> web.Response:
        return web.json_response([t.to_dict() for t in proxy.toxics.values()])

    @routes.post("/toxics")
    async def add_toxic(request: web.Request) -> web.Response:
        try:
            toxic = parse_toxic(await request.json())
        except ValueError as exc:  # includes JSONDecodeError
            return web.json_response({"error": str(exc).splitlines()[0]}, status=400)
        try:
            proxy.add_toxic(toxic)
        except KeyError:
            return web.json_response({"error": f"toxic {toxic.name!r} exists"}, status=409)
        return web.json_response(toxic.to_dict(), status=201)

    @routes.delete("/toxics/{name}")
    async def remove_toxic(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not proxy.remove_toxic(name):
            return web.json_response({"error": f"no toxic {name!r}"}, status=404)
        return web.Response(status=204)

    @routes.delete("/toxics")
    async def clear_toxics(_: web.Request) -> web.Response:
        proxy.toxics.clear()
        return web.Response(status=204)

    @routes.get("/stats")
    async def stats(_: web.Request) -> web.Response:
        return web.json_response(proxy.stats_dict())

    app = web.Application()
    app.add_routes(routes)
    return app


# --- the client used by faults and tests ------------------------------------------------------


class ProxyControl:
    """A small synchronous client for the control API (httpx)."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def add(self, name: str, type: str, direction: Direction = "both", **params: Any) -> dict:
        body = {"name": name, "type": type, "direction": direction, "params": params}
        r = self.http.post("/toxics", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"proxy refused toxic {name!r}: {r.status_code} {r.text}")
        return r.json()

    def remove(self, name: str) -> bool:
        r = self.http.delete(f"/toxics/{name}")
        if r.status_code not in (204, 404):
            r.raise_for_status()
        return r.status_code == 204

    def clear(self) -> None:
        self.http.delete("/toxics").raise_for_status()

    def toxics(self) -> list[dict]:
        r = self.http.get("/toxics")
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict[str, Any]:
        r = self.http.get("/stats")
        r.raise_for_status()
        return r.json()

    def wait_ready(self, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.stats()
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.http.close()


# --- entry point ------------------------------------------------------------------------------


def _hostport(flag: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{flag}: expected HOST:PORT, got {value!r}")
    return host, int(port)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m flashlab.chaos.proxy", description=__doc__.splitlines()[0]
    )
    p.add_argument("--listen", required=True, type=lambda v: _hostport("--listen", v))
    p.add_argument("--upstream", required=True, type=lambda v: _hostport("--upstream", v))
    p.add_argument("--control", required=True, type=lambda v: _hostport("--control", v))
    return p.parse_args(argv)


async def serve(
    listen: tuple[str, int], upstream: tuple[str, int], control: tuple[str, int]
) -> None:
    proxy = Proxy(listen, upstream)
    await proxy.start()
    runner = web.AppRunner(control_app(proxy), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, control[0], control[1], reuse_address=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"proxy {listen[0]}:{listen[1]} -> {upstream[0]}:{upstream[1]} ready", flush=True)
    await stop.wait()
    await proxy.close()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the proxy works without
        run = asyncio.run
    try:
        run(serve(args.listen, args.upstream, args.control))
    except OSError as exc:
        print(f"error: cannot bind: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
