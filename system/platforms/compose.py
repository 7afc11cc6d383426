"""The Docker Compose platform: the lab's stack as the containers of one Compose project.

`ComposePlatform` makes sure the images are current (flashlab.system.platforms.images), writes
the stack's compose file (flashlab.system.platforms.compose_file: N api services, profiles) and
drives it through the Compose CLI (flashlab.system.platforms.compose_cli: the v2 plugin `docker
compose`, else docker-compose v1; up/down, one project `flashlab-<random>` per stack) and
the Docker SDK (find containers by compose labels, signal, pause, restart). It picks free
127.0.0.1 ports itself: ports stay fixed across container restarts, so `StackInfo.redis_url`
stays valid after a Redis restart. Inside the containers, the services start through
`python -m flashlab.system.platforms.compose_entry exec redis|nginx|prometheus`.

Signals: a crash fault must look like a crash, so a signal goes to the container's main process
by its host PID (when this process may signal it and the PID provably belongs to the container)
and Docker's restart policy reacts as to a real crash: api workers are respawned
(`restart: always`), Redis and nginx stay down until `start_component`. `docker kill` instead
would mark the container "manually stopped" and suppress the restart. SIGSTOP/SIGCONT map to
pause/unpause (the cgroup freezer: every process of the container stops).

Every started project is stopped when the interpreter exits (`register_live`, `forget_live`),
including a target's own Compose file (flashlab.system.targets.compose).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal as _signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import redis
from docker.models.containers import Container

from flashlab.core.platform import Component
from flashlab.core.platform import ComponentNotRunning
from flashlab.core.platform import DockerUnavailable
from flashlab.core.platform import Platform
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import PlatformError
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.core.platform import StackStartError
from flashlab.core.platform import check_durability
from flashlab.system.platforms import free_port
from flashlab.system.platforms.compose_cli import ComposeCli
from flashlab.system.platforms.compose_cli import find_compose
from flashlab.system.platforms.compose_cli import project_name
from flashlab.system.platforms.compose_file import api_services
from flashlab.system.platforms.compose_file import write_compose
from flashlab.system.platforms.images import BUILD_POLICIES
from flashlab.system.platforms.images import REPO_ROOT
from flashlab.system.platforms.images import BuildPolicy
from flashlab.system.platforms.images import ensure_images

RAY_NODES = ("ray-head", "ray-worker")
# Inside the project network the shopper actors reach nginx by its service name.
RAY_BASE_URL = "http://nginx:80"
API_PORT = 8000
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# Component order in StackInfo, after the api workers come the optional services.
_ORDER = ("redis", "api", "nginx", "proxy", "prometheus", "grafana", "ray-head", "ray-worker")

UP_TIMEOUT_S = 180.0
DOWN_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 90.0


class ComposeError(PlatformError):
    """A Compose step failed (or the stack was driven out of order); the message says why.

    The other failures raise the platform-independent kinds of flashlab.core.platform:
    DockerUnavailable, StackStartError, ComponentNotRunning, PlatformConfigError."""


def _kind(service: str) -> str:
    return "api" if service.startswith("api-") else service


def _sort_key(service: str) -> tuple[int, int]:
    kind = _kind(service)
    index = int(service.split("-", 1)[1]) if kind == "api" else 0
    return (_ORDER.index(kind) if kind in _ORDER else len(_ORDER), index)


# The projects this process started and has not stopped yet (ComposeTarget's too).
_LIVE: set[ComposePlatform] = set()
_LIVE_LOCK = threading.Lock()


def register_live(platform: ComposePlatform) -> None:
    """Stop `platform` at interpreter exit unless `forget_live` says it is down already."""
    with _LIVE_LOCK:
        _LIVE.add(platform)


def forget_live(platform: ComposePlatform) -> None:
    """`platform` is down: nothing to stop for it at exit."""
    with _LIVE_LOCK:
        _LIVE.discard(platform)


@atexit.register
def _stop_live() -> None:
    """Never leave a project's containers running when the interpreter exits (Ctrl-C, crash)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for platform in live:
        with contextlib.suppress(Exception):
            platform.stop()


class ComposePlatform(Platform):
    """The stack as Compose containers; see the module docstring for the signal semantics."""

    name = "compose"

    def __init__(
        self,
        config: StackConfig,
        *,
        build: BuildPolicy | None = None,
        dashboards: bool = False,
        image_tag: str = "latest",
    ) -> None:
        super().__init__(config)
        if config.workers < 1:
            raise PlatformConfigError(f"workers must be >= 1 (got {config.workers})")
        check_durability(config.durability)
        policy = build or os.environ.get("FLASHLAB_COMPOSE_BUILD", "auto")
        if policy not in BUILD_POLICIES:
            raise PlatformConfigError(
                f"FLASHLAB_COMPOSE_BUILD/build must be one of {', '.join(BUILD_POLICIES)}"
            )
        self.build: str = policy
        self.dashboards = dashboards
        self.image_tag = image_tag
        self.project: str | None = None
        self._info: StackInfo | None = None
        self._env: dict[str, str] = {}
        self._compose_file: Path | None = None
        self._project_dir: Path = REPO_ROOT  # what relative paths in the compose file start at
        self._own_workdir: Path | None = None
        self._client_obj: docker.DockerClient | None = None
        self._cli: ComposeCli | None = None  # found at start: `docker compose` or docker-compose
        # start_component restarts, counted like the local supervisor counts them; Docker's
        # RestartCount only counts its own restart-policy respawns.
        self._manual_starts: dict[str, int] = {}

    # -- docker plumbing ---------------------------------------------------------------------------

    def _client(self) -> docker.DockerClient:
        if self._client_obj is None:
            try:
                client = docker.from_env(timeout=60)
                client.ping()
            except (docker.errors.DockerException, OSError) as exc:
                reason = f"{exc.__class__.__name__}: {exc}"[:200]
                raise DockerUnavailable(
                    f"no Docker engine answers ({reason}); run scripts/ensure-docker.sh"
                ) from None
            self._client_obj = client
        return self._client_obj

    def _profiles(self) -> list[str]:
        profiles = []
        if self.config.proxy:
            profiles.append("proxy")
        if self.config.prometheus:
            profiles.append("metrics")
        if self.dashboards:
            profiles.append("dashboards")
        if self.config.ray:
            profiles.append("ray")
        return profiles

    def _compose(self, *args: str, timeout: float) -> str:
        """Run Compose for this project; its own error output on failure, bounded in time."""
        if self._cli is None:
            self._cli = find_compose()
        cli = self._cli
        assert self.project is not None and self._compose_file is not None
        cmd = [*cli.argv, "-p", self.project, "-f", str(self._compose_file)]
        cmd += ["--project-directory", str(self._project_dir), *args]
        env = {**os.environ, **self._env, "COMPOSE_PROFILES": ",".join(self._profiles())}
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ComposeError(f"{cli.command} {args[0]} exceeded {timeout:.0f}s") from None
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            raise ComposeError(
                f"{cli.command} {args[0]} failed: {lines[-1] if lines else done.returncode}"
            )
        return done.stdout

    def _containers(self) -> dict[str, Container]:
        """This project's containers by service name (all states), found by compose labels."""
        if self.project is None:
            return {}
        found = self._client().containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={self.project}"}
        )
        return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}

    def _container(self, component: str) -> Container:
        containers = self._containers()
        if component not in containers:
            known = ", ".join(sorted(containers, key=_sort_key)) or "none (stack not started)"
            raise PlatformConfigError(f"unknown component {component!r} (have: {known})")
        return containers[component]

    # -- lifecycle -------------------------------------------------------------------------------

    def _ensure_images(self, log_path: Path) -> None:
        if self.build == "never":  # use the images as they are, without asking the engine
            return
        ensure_images(
            self._client(),
            policy=self.build,
            tag=self.image_tag,
            prometheus=self.config.prometheus,
            ray=self.config.ray,
            log_path=log_path,
        )

    def _prepare(self, workdir: Path) -> None:
        """The derived compose file, project name, ports and token for this stack."""
        self._compose_file = write_compose(workdir, self.config.workers, self.config.cpus)
        self.project = project_name("flashlab", secrets.token_hex(4))
        workers = api_services(self.config.workers)
        targets = ",".join(f"{w}:{API_PORT}" for w in workers)
        self._env = {
            "FLASHLAB_IMAGE_TAG": self.image_tag,
            "FLASHLAB_ADMIN_TOKEN": self.config.admin_token or secrets.token_urlsafe(24),
            "FLASHLAB_DURABILITY": self.config.durability,
            "FLASHLAB_REDIS_TIMEOUT_MS": str(self.config.redis_timeout_ms),
            "FLASHLAB_REDIS_POOL_SIZE": str(self.config.redis_pool_size),
            "FLASHLAB_UPSTREAMS": targets,
            # Every worker's /metrics is the stack total (shared multiprocess dir), so Prometheus
            # scrapes one place, through nginx, like the local platform; per-worker targets would
            # count everything N times.
            "FLASHLAB_PROMETHEUS_TARGETS": "nginx:80",
            "FLASHLAB_API_REDIS_URL": "redis://proxy:6380/0"
            if self.config.proxy
            else "redis://redis:6379/0",
        }
        for var in ("HTTP", "REDIS", "PROMETHEUS", "PROXY_CONTROL", "GRAFANA", "RAY_CLIENT"):
            self._env[f"FLASHLAB_{var}_PORT"] = str(free_port())

    def start(self) -> StackInfo:
        if self.project is not None:
            raise ComposeError(f"stack {self.project} already started; stop() it first")
        self._cli = find_compose()  # before a build: no Compose, no stack
        workdir = self._make_workdir()
        self._ensure_images(workdir / "build.log")
        self._prepare(workdir)
        register_live(self)
        try:
            self._compose("up", "-d", "--no-build", "--remove-orphans", timeout=UP_TIMEOUT_S)
            info = self._stack_info(workdir)
            self._info = info
            self._wait_ready(info)
            if self.config.ray:
                self._wait_ray_nodes()
            return self.status()
        except BaseException as exc:  # Ctrl-C included: never leave half a stack behind
            detail = self._logs_tail() if isinstance(exc, PlatformError) else ""
            self.stop()
            if detail:
                # Same kind (Docker gone, a start failure, ...), with the containers' last words.
                raise type(exc)(f"{exc}; last container logs:\n{detail}") from None
            raise

    def _make_workdir(self) -> Path:
        if self.config.workdir:
            path = Path(self.config.workdir)
            path.mkdir(parents=True, exist_ok=True)
            return path
        self._own_workdir = Path(tempfile.mkdtemp(prefix="flashlab-compose-"))
        return self._own_workdir

    def _stack_info(self, workdir: Path) -> StackInfo:
        env = self._env
        assert self._cli is not None  # start() found it
        extra: dict[str, Any] = {
            "project": self.project,
            "compose_file": str(self._compose_file),
            "compose": self._cli.record(),  # which Compose ran it: `docker compose` or v1
        }
        if self.config.proxy:
            extra["proxy_control_url"] = f"http://127.0.0.1:{env['FLASHLAB_PROXY_CONTROL_PORT']}"
        if self.dashboards:
            extra["grafana_url"] = f"http://127.0.0.1:{env['FLASHLAB_GRAFANA_PORT']}"
        if self.config.ray:  # Ray Client through the 127.0.0.1 port; actors use the network
            extra["ray_address"] = f"ray://127.0.0.1:{env['FLASHLAB_RAY_CLIENT_PORT']}"
            extra["ray_base_url"] = RAY_BASE_URL
        return StackInfo(
            platform=self.name,
            base_url=f"http://127.0.0.1:{env['FLASHLAB_HTTP_PORT']}",
            redis_url=f"redis://127.0.0.1:{env['FLASHLAB_REDIS_PORT']}/0",
            admin_token=env["FLASHLAB_ADMIN_TOKEN"],
            workdir=str(workdir),
            prometheus_url=f"http://127.0.0.1:{env['FLASHLAB_PROMETHEUS_PORT']}"
            if self.config.prometheus
            else None,
            extra=extra,
        )

    def _wait_ready(self, info: StackInfo, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until /readyz through nginx has answered 200 from every api worker (bounded)."""
        pending = set(api_services(self.config.workers))
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        with httpx.Client(base_url=info.base_url, timeout=2.0) as http:
            while pending:
                if time.monotonic() > deadline:
                    raise StackStartError(
                        f"/readyz through nginx not 200 from {sorted(pending)} within {timeout_s:.0f}s (last: {last})"
                    )
                self._raise_if_exited({"redis", "nginx"})
                try:
                    response = http.get("/readyz")
                    last = f"{response.status_code} {response.text[:120]}"
                    if response.status_code == 200:
                        pending.discard(response.json().get("worker", ""))
                        continue
                except httpx.HTTPError as exc:
                    last = exc.__class__.__name__
                time.sleep(0.2)

    def _wait_ray_nodes(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until `ray status` in the head counts both Ray nodes alive (bounded)."""
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            self._raise_if_exited(set(RAY_NODES))
            code, out = self._container("ray-head").exec_run(["ray", "status"])
            text = out.decode(errors="replace")
            alive = text.split("Pending:")[0].count(" node_")
            if code == 0 and alive >= len(RAY_NODES):
                return
            last = f"{alive} node(s) alive" if code == 0 else f"exit {code}"
            time.sleep(1.0)
        raise StackStartError(f"Ray nodes not all up within {timeout_s:.0f}s (last: {last})")

    def _raise_if_exited(self, services: set[str]) -> None:
        """Fail fast instead of waiting out the deadline when a non-restarting service died."""
        for name, container in self._containers().items():
            if name in services and container.status == "exited":
                raise StackStartError(f"container {name} exited at start")

    def _logs_tail(self, lines: int = 5) -> str:
        out = []
        with contextlib.suppress(Exception):
            for name, container in sorted(
                self._containers().items(), key=lambda kv: _sort_key(kv[0])
            ):
                text = container.logs(tail=lines).decode(errors="replace").strip()
                if text:
                    out.append(f"[{name}] " + text.replace("\n", f"\n[{name}] "))
        return "\n".join(out)

    def stop(self) -> None:
        """`compose down -v`, then remove anything still labelled with the project."""
        if self.project is None:
            return
        try:
            with contextlib.suppress(PlatformError):
                self._compose("down", "-v", "--remove-orphans", "-t", "5", timeout=DOWN_TIMEOUT_S)
            self._sweep()
        finally:
            forget_live(self)
            self.project = None
            self._info = None
            self._manual_starts.clear()
            if self._own_workdir is not None:
                shutil.rmtree(self._own_workdir, ignore_errors=True)
                self._own_workdir = None

    def _sweep(self) -> None:
        """Belt and braces after `down`: containers, networks, volumes of this project only."""
        client = self._client()
        label = {"label": f"{PROJECT_LABEL}={self.project}"}
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True, v=True)
        for network in client.networks.list(filters=label):
            network.remove()
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)

    # -- inspection --------------------------------------------------------------------------------

    def components(self) -> list[Component]:
        ports = {
            "redis": "FLASHLAB_REDIS_PORT",
            "nginx": "FLASHLAB_HTTP_PORT",
            "prometheus": "FLASHLAB_PROMETHEUS_PORT",
            "proxy": "FLASHLAB_PROXY_CONTROL_PORT",
            "grafana": "FLASHLAB_GRAFANA_PORT",
            "ray-head": "FLASHLAB_RAY_CLIENT_PORT",
        }
        out = []
        for name, container in sorted(self._containers().items(), key=lambda kv: _sort_key(kv[0])):
            state = container.attrs.get("State", {})
            port_var = ports.get(name)
            out.append(
                Component(
                    name=name,
                    kind=_kind(name),
                    pid=state.get("Pid") or None,
                    container=container.id,
                    port=int(self._env[port_var]) if port_var else None,
                    restarts=int(container.attrs.get("RestartCount", 0))
                    + self._manual_starts.get(name, 0),
                    running=container.status == "running",
                )
            )
        return out

    def status(self) -> StackInfo:
        if self._info is None:
            raise ComponentNotRunning("stack not started")
        info = StackInfo.from_dict(self._info.to_dict())
        info.components = self.components()
        return info

    # -- faults --------------------------------------------------------------------------------------

    def signal(self, component: str, sig: int = _signal.SIGTERM) -> None:
        container = self._container(component)
        if container.status not in ("running", "paused"):
            raise ComponentNotRunning(
                f"component {component!r} is not running ({container.status})"
            )
        if sig == _signal.SIGSTOP:
            container.pause()
            return
        if sig == _signal.SIGCONT:
            container.unpause()
            return
        pid = _owned_main_pid(container)
        if pid is not None:
            os.kill(pid, sig)  # a crash as Docker's restart policy sees one
        else:
            container.kill(signal=int(sig))

    def paused(self, component: str) -> bool:
        # `docker pause` freezes the cgroup: the process is not in the stopped state, the
        # container is.
        container = self._container(component)
        container.reload()
        return container.status == "paused"

    def start_component(self, component: str, timeout_s: float = 30.0) -> Component:
        """Unpause, or start a stopped container; then wait (bounded) until it serves again."""
        container = self._container(component)
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()
            self._manual_starts[component] = self._manual_starts.get(component, 0) + 1
        self._wait_serving(component, timeout_s)
        return next(c for c in self.components() if c.name == component)

    def _wait_serving(self, component: str, timeout_s: float) -> None:
        probe = _PROBES.get(_kind(component))
        deadline = time.monotonic() + timeout_s
        while True:
            container = self._container(component)
            info = self._info
            ok = container.status == "running" and (
                probe is None or (info is not None and probe(info))
            )
            if ok:
                return
            if time.monotonic() > deadline:
                raise StackStartError(
                    f"{component} not serving {timeout_s:.0f}s after start ({container.status})"
                )
            time.sleep(0.1)


def _owned_main_pid(container: Container) -> int | None:
    """The container's main process as a host PID, if it provably is that container's and ours to signal."""
    container.reload()
    pid = int(container.attrs.get("State", {}).get("Pid") or 0)
    if pid <= 0:
        return None
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        os.kill(pid, 0)  # permission check only
    except (OSError, PermissionError):
        return None  # remote engine, rootless, or not allowed: let Docker deliver it
    return pid if container.id in cgroups else None


def _redis_pings(info: StackInfo) -> bool:
    try:
        client = redis.Redis.from_url(info.redis_url, socket_timeout=1)
        with contextlib.closing(client):
            return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def _http_ready(info: StackInfo) -> bool:
    try:
        return httpx.get(f"{info.base_url}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


# component kind -> "is it serving?" through its published port (api workers are not published).
_PROBES: dict[str, Callable[[StackInfo], bool]] = {
    "redis": _redis_pings,
    "nginx": _http_ready,
}
