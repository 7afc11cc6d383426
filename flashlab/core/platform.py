"""The platform interface: what a stack is, what any platform must do, and the errors it raises.

A stack is its config, components and info; every platform raises the one error hierarchy below.

Exceptions (the CLI maps a `PlatformConfigError` to exit 2, every other `PlatformError` to exit 4):

* PlatformError                  - the stack could not be started, reached, driven or stopped
  + PlatformConfigError          - bad platform input (workers, durability, unknown platform or
  |                                component); also a ValueError
  + DockerUnavailable            - no Docker engine answers, or no Compose (`docker compose` v2
  |                                nor docker-compose v1)
  + StackStartError              - a component did not come up (binary missing, not ready, image
  |                                build failed, container exited at start)
  + ComponentNotRunning          - a component is down when it should run (died outside a fault,
  |                                stack not started)
  + StackError                   - local platform: anything else (its historical name)
  + ComposeError                 - compose platform: anything else (a Compose step failed, ...)

`StackError` and `ComposeError` live in their platform modules; the kinds above live here so a
caller can catch "Docker is not there" without knowing which platform it asked for.
"""

from __future__ import annotations

import signal as _signal
from abc import ABC
from abc import abstractmethod
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from typing import get_args

from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import InfraError
from flashlab.core.errors import UserError

# Redis persistence modes: a fixed set (each is a redis.conf recipe), not an extension point.
# The platforms' names are their registry's (flashlab.system.platforms.PLATFORMS).
Durability = Literal["none", "rdb", "aof-everysec", "aof-always"]
DURABILITY_MODES: tuple[str, ...] = get_args(Durability)


class PlatformError(InfraError, RuntimeError):
    """The stack could not be started, reached, driven or stopped; the message is one line."""

    def one_line(self) -> str:
        return f"stack: {self}"


class PlatformConfigError(PlatformError, UserError, ValueError):
    """Bad platform input (a config value, a platform or component name): the caller's mistake,
    so exit 2 and the message bare, though callers catching PlatformError still catch it."""

    exit_code = EXIT_BAD_INPUT

    def one_line(self) -> str:
        return str(self)


class DockerUnavailable(PlatformError):
    """No Docker engine answers, or no Compose command does (`docker compose` v2, docker-compose v1)."""


class StackStartError(PlatformError):
    """A component did not come up: binary missing, not ready in time, exited during startup."""


class ComponentNotRunning(PlatformError):
    """A component is down (or the stack not started) when it should be running."""


def durability_problem(mode: str) -> str | None:
    """None for a known durability mode; else the one line saying what is allowed.

    The platforms, the container entrypoint and `flashlab stack up` put their own field name
    before it (`durability`, `FLASHLAB_DURABILITY`, `--durability`)."""
    if mode in DURABILITY_MODES:
        return None
    return f"{mode!r} is not one of {', '.join(DURABILITY_MODES)}"


def check_durability(mode: str, field: str = "durability") -> None:
    """PlatformConfigError naming `field` unless `mode` is a durability mode."""
    problem = durability_problem(mode)
    if problem:
        raise PlatformConfigError(f"{field}: {problem}")


@dataclass
class StackConfig:
    workers: int = 2
    durability: Durability = "none"
    admin_token: str | None = None  # generated per stack when None
    redis_timeout_ms: int = 500  # API's bound on every Redis call; beyond it: 503
    redis_pool_size: int = 64  # per worker; a full pool waits at most redis_timeout_ms
    prometheus: bool = True  # start prometheus when the binary is installed
    proxy: bool = False  # put the TCP fault proxy between API workers and Redis
    workdir: str | None = None  # run-owned temp dir when None
    log_level: str = "warning"
    # CPUs every stack process is pinned to (flashlab.core.isolation); None = not pinned.
    cpus: list[int] | None = None
    # Compose only: also a Ray head and a Ray worker (the `ray` profile) to run shopper actors
    # next to the stack; StackInfo.extra then has `ray_address` and `ray_base_url`.
    ray: bool = False


@dataclass
class Component:
    name: str  # "redis", "api-0", "api-1", "nginx", "prometheus", "proxy"
    kind: str  # "redis" | "api" | "nginx" | "prometheus" | "proxy"
    pid: int | None = None  # local platform
    container: str | None = None  # compose platform
    port: int | None = None
    restarts: int = 0  # respawns by the supervisor (api workers)
    running: bool = True


@dataclass
class StackInfo:
    platform: str
    base_url: str  # nginx, e.g. http://127.0.0.1:PORT
    redis_url: str  # direct to Redis (the lab's truth channel), never via the proxy
    admin_token: str
    components: list[Component] = field(default_factory=list)
    workdir: str | None = None
    prometheus_url: str | None = None
    supervisor_pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackInfo:
        data = dict(data)
        data["components"] = [Component(**c) for c in data.get("components", [])]
        return cls(**data)


class Platform(ABC):
    """A way to run the stack. Faults act on it only through these methods."""

    name: str

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    @abstractmethod
    def start(self) -> StackInfo:
        """Start every component, wait until /readyz answers through nginx, return how to reach it."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every component this platform started; idempotent."""

    @abstractmethod
    def status(self) -> StackInfo:
        """Current components (PIDs/containers, restarts, running)."""

    @abstractmethod
    def components(self) -> list[Component]: ...

    @abstractmethod
    def signal(self, component: str, sig: int = _signal.SIGTERM) -> None:
        """Send a signal to one component (by name, e.g. 'redis', 'api-1', 'nginx')."""

    @abstractmethod
    def start_component(self, component: str) -> Component:
        """(Re)start a stopped component, e.g. Redis after a kill; returns it with its new PID."""

    def paused(self, component: str) -> bool:
        """Whether a component is frozen (SIGSTOP locally). Platforms that freeze differently
        (Compose pauses the container's cgroup, which leaves no stopped-process state) override it."""
        # start-up cost: only this path pays for psutil
        import psutil

        comp = next((c for c in self.components() if c.name == component), None)
        if comp is None or comp.pid is None:
            return False
        try:
            status = psutil.Process(comp.pid).status()
        except psutil.NoSuchProcess:
            return False
        return status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)

    def __enter__(self) -> Platform:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
