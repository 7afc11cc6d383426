"""What a fault is (params model, inject, recover) and the context it acts through (platform, stack, engine, proxy).

A fault only touches the stack through `Platform` methods (signal, start_component, components),
the truth channel (`StackInfo.redis_url`, for INFO), the fault proxy's control API and the load
engine, so the same fault class works on every platform that implements them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import ClassVar
from typing import TypeVar
from urllib.parse import urlparse

import redis
from pydantic import BaseModel
from pydantic import ConfigDict

from flashlab.chaos.proxy.control import ProxyControl
from flashlab.core.errors import InfraError
from flashlab.core.platform import Component
from flashlab.core.platform import Platform
from flashlab.core.platform import StackInfo
from flashlab.core.registry import doc_summary

T = TypeVar("T")

# Bounds on every wait a fault does, so a stuck component can never hang the scheduler.
STOP_TIMEOUT_S = 15.0
RESPAWN_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 0.5


class FaultError(InfraError, RuntimeError):
    """A fault could not act; the message is one line and says why (recorded in faults.parquet)."""


class FaultParams(BaseModel):
    """Base for every fault's parameters: unknown fields are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class FaultContext:
    """Everything a fault may act on. `platform` is None only for proxy/engine-only use in tests."""

    info: StackInfo
    platform: Platform | None = None
    engine: Any | None = None  # simulator engine: kill_worker(i), worker_count()
    _proxies: dict[str, ProxyControl] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def proxy(self) -> ProxyControl:
        return self.proxy_for("store")

    def proxy_for(self, link: str) -> ProxyControl:
        """The fault proxy's control client on `link`: "store" (between the API and its
        store) or "client" (between the shoppers and a target's base_url)."""
        key = "proxy_control_url" if link == "store" else f"{link}_proxy_control_url"
        url = self.info.extra.get(key)
        if not url:
            raise FaultError(
                f"this fault needs the TCP fault proxy on the {link} link, but the stack has "
                "none (`flashlab run` starts it for experiments with network faults)"
            )
        with self._lock:
            if link not in self._proxies:
                self._proxies[link] = ProxyControl(url)
            return self._proxies[link]

    def require_platform(self) -> Platform:
        if self.platform is None:
            raise FaultError("this fault needs a stack the lab started itself (no platform)")
        return self.platform

    def components(self, kind: str | None = None) -> list[Component]:
        found = self.require_platform().components()
        return [c for c in found if kind is None or c.kind == kind]

    def component_of(self, kind: str) -> Component:
        """The (first) component of `kind` ("redis", "db", "api", "nginx"): what a fault that
        acts on a role hits, whatever the platform names it (a target's `role:`)."""
        found = self.components(kind)
        if not found:
            have = ", ".join(f"{c.name} ({c.kind})" for c in self.components()) or "none"
            raise FaultError(f"stack has no {kind} component (have: {have})")
        return found[0]

    def component(self, name: str) -> Component:
        for comp in self.components():
            if comp.name == name:
                return comp
        have = ", ".join(c.name for c in self.components()) or "none"
        raise FaultError(f"stack has no component {name!r} (have: {have})")

    def redis_server_info(self) -> dict[str, Any]:
        """Redis INFO server fields that prove a restart (run_id, uptime, pid), via the truth channel."""
        client = redis.Redis.from_url(
            self.info.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        with contextlib.closing(client):
            info = client.info("server")
        return {
            "run_id": info.get("run_id"),
            "uptime_s": info.get("uptime_in_seconds"),
            "process_id": info.get("process_id"),
        }

    def close(self) -> None:
        with self._lock:
            for proxy in self._proxies.values():
                proxy.close()
            self._proxies.clear()


class Fault(ABC):
    """One fault occurrence. Subclasses set `name` and `Params`, implement inject, and describe
    themselves in their docstring (its first paragraph is `description`: flashlab.core.registry).

    `recover` must be safe to call even when `inject` failed half-way: the scheduler always calls
    it after an injection attempt, because leaving Redis paused or a toxic on is worse than a
    no-op recovery."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[FaultParams]] = FaultParams
    needs_proxy: ClassVar[bool] = False
    # The role a backend described by a target file must give a process for this fault to hit
    # (flashlab.core.target.Role); None: not a component of the backend (network, actors).
    role: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and "description" not in cls.__dict__:
            cls.description = doc_summary(cls) or ""

    def __init__(self, params: dict[str, Any] | FaultParams | None = None, index: int = 0) -> None:
        self.params = self.Params.model_validate(
            params.model_dump() if isinstance(params, BaseModel) else (params or {})
        )
        self.index = index
        self.target: str | None = None

    @abstractmethod
    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        """Do the damage; return what was observed (PIDs, INFO fields, proxy stats...)."""

    def aim(self, ctx: FaultContext, kind: str) -> tuple[Platform, Component]:
        """Target the component of `kind` in a stack the lab started: its platform and its
        state now; `self.target` is its name."""
        platform = ctx.require_platform()
        comp = ctx.component_of(kind)
        self.target = comp.name
        return platform, comp

    def recover(self, ctx: FaultContext) -> dict[str, Any]:
        """Undo the damage (restart, continue, remove toxic); return what was observed."""
        return {}


class StopStartFault(Fault):
    """Stop the `component` (a kind) with `sig` and wait until it is gone; recover starts it
    again.

    `start_component` waits until the component answers (Redis PING, nginx /readyz). Subclasses
    add evidence from before the signal and after the restart through the two hooks.
    """

    component: ClassVar[str]  # the component kind: "redis", "db", "nginx"
    sig: ClassVar[int]
    stop_what: ClassVar[str]  # the wait_for description of the stop

    def stop_signal(self) -> int:
        return self.sig

    def _before_stop(self, ctx: FaultContext) -> dict[str, Any]:
        return {}

    def _after_start(self, ctx: FaultContext) -> dict[str, Any]:
        return {}

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        platform, old = self.aim(ctx, self.component)
        before = self._before_stop(ctx)
        start = time.monotonic()
        platform.signal(old.name, self.stop_signal())
        wait_for(lambda: not ctx.component(old.name).running, STOP_TIMEOUT_S, self.stop_what)
        self._stopped_at = time.monotonic()
        return {**before, "old_pid": old.pid, "stopped_ms": elapsed_ms(start)}

    def recover(self, ctx: FaultContext) -> dict[str, Any]:
        platform = ctx.require_platform()
        start = time.monotonic()
        name = self.target or ctx.component_of(self.component).name
        comp = platform.start_component(name)
        after = self._after_start(ctx)
        stopped = getattr(self, "_stopped_at", None)
        return {
            "new_pid": comp.pid,
            **after,
            "restart_ms": elapsed_ms(start),
            "down_ms": elapsed_ms(stopped) if stopped is not None else None,
        }


# --- small helpers shared by the fault families --------------------------------------------


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll `check` until it returns something truthy; FaultError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        if time.monotonic() >= deadline:
            raise FaultError(f"{what}: not observed within {timeout_s:.0f}s")
        time.sleep(0.02)


def elapsed_ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)


def tcp_ping(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """One raw RESP PING: 'ok' with the round trip, or how it failed (timeout / reset / closed).

    Raw sockets rather than redis-py so no client-side retry hides what the network did."""
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(b"PING\r\n")
            reply = sock.recv(16)
    except TimeoutError:
        return {"result": "timeout", "ms": elapsed_ms(start)}
    except ConnectionResetError:
        return {"result": "reset", "ms": elapsed_ms(start)}
    except OSError as exc:
        return {"result": f"error: {exc.strerror or exc}", "ms": elapsed_ms(start)}
    if reply.startswith(b"+PONG"):
        return {"result": "ok", "ms": elapsed_ms(start)}
    return {"result": "closed" if not reply else f"reply {reply!r}", "ms": elapsed_ms(start)}


def host_port(url_or_addr: str) -> tuple[str, int]:
    """'redis://h:p/0' or 'h:p' -> (h, p)."""
    if "://" in url_or_addr:
        parsed = urlparse(url_or_addr)
        return parsed.hostname or "127.0.0.1", parsed.port or 6379
    host, _, port = url_or_addr.rpartition(":")
    return host, int(port)
