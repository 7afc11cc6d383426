"""The proxy's command line: parse --listen/--upstream/--control, serve until SIGTERM or SIGINT.

``python -m flashlab.chaos.proxy --listen 127.0.0.1:P --upstream 127.0.0.1:R --control 127.0.0.1:C``
forwards P to R through the toxics and serves the control API on C. Exit 2, one line, when a
flag is malformed or an address cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

import flashlab.chaos.proxy
from flashlab.chaos.proxy.control_api import control_app
from flashlab.chaos.proxy.server import Proxy

run_loop: Callable[[Coroutine[Any, Any, None]], None]  # uvloop.run, else asyncio.run
try:
    from uvloop import run as run_loop
except ImportError:  # pragma: no cover - uvloop is a dependency, but the proxy works without
    from asyncio import run as run_loop


def _hostport(flag: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{flag}: expected HOST:PORT, got {value!r}")
    return host, int(port)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    description = (flashlab.chaos.proxy.__doc__ or "").splitlines()[0]
    p = argparse.ArgumentParser(prog="python -m flashlab.chaos.proxy", description=description)
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
        run_loop(serve(args.listen, args.upstream, args.control))
    except OSError as exc:
        print(f"error: cannot bind: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
