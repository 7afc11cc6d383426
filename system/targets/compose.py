"""The Compose platform of a target: the user's own Compose file, brought up under a project name the lab owns.

Port placeholders are the lab's free loopback ports, handed to Compose as environment variables
in upper case (`{port}` -> `${PORT}`, `{redis_port}` -> `${REDIS_PORT}`), so the file publishes
them on 127.0.0.1; `start.env` adds more (e.g. `MODE`). The services named in the target file
play their roles for faults (redis-* hit role redis, worker-kill role worker...), each judged
up by its `ready` check. Everything else - the Docker SDK plumbing, signals as crashes Docker's
restart policy sees, `down -v` plus a sweep of the project's labels at stop and at exit - is the
lab's own Compose platform's (flashlab.system.platforms.compose).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from flashlab.core.placeholders import render
from flashlab.core.platform import Component
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.core.platform import StackStartError
from flashlab.core.target import ComposeStart
from flashlab.core.target import TargetSpec
from flashlab.core.target import local_values
from flashlab.system.platforms import free_port
from flashlab.system.platforms.compose import ComposePlatform
from flashlab.system.platforms.compose import register_live
from flashlab.system.platforms.compose_cli import find_compose
from flashlab.system.platforms.compose_cli import project_name
from flashlab.system.supervisor import http_ok
from flashlab.system.supervisor import tcp_open
from flashlab.system.targets.processes import KINDS
from flashlab.system.targets.processes import run_setup

BUILD_UP_TIMEOUT_S = 900.0  # `up --build` may install packages into an image first
READY_TIMEOUT_S = 120.0


class ComposeTarget(ComposePlatform):
    """A target's Compose file as a platform (its services are the components)."""

    name = "target"

    def __init__(self, spec: TargetSpec, config: StackConfig, links: frozenset[str]) -> None:
        super().__init__(config, build="never")  # the user's file builds its own images
        assert isinstance(spec.start, ComposeStart)
        if links:
            raise PlatformConfigError(
                f"target {spec.name}: network faults need processes the lab starts itself "
                "(start: a list), not a Compose file"
            )
        self.spec = spec
        self.start_spec: ComposeStart = spec.start
        self.values: dict[str, Any] = {}

    def base_url(self) -> str:
        return render(self.spec.base_url, self.values).rstrip("/")

    def start(self) -> StackInfo:
        if self.project is not None:
            raise StackStartError(f"target {self.spec.name} already started")
        self._cli = find_compose()  # before setup: no Compose, nothing to set up for
        workdir = Path(tempfile.mkdtemp(prefix=f"flashlab-{self.spec.name}-"))
        self._own_workdir = workdir
        ports = {name: free_port() for name in self.spec.port_names()}
        self.values = local_values(self.spec, workdir, ports)
        compose_file = (self.spec.folder / render(self.start_spec.compose, self.values)).resolve()
        if not compose_file.is_file():
            shutil.rmtree(workdir, ignore_errors=True)
            raise PlatformConfigError(f"start.compose: {compose_file} is not a file")
        self._compose_file, self._project_dir = compose_file, compose_file.parent
        (workdir / "logs").mkdir()
        try:
            run_setup(
                self.spec.setup, self.spec.folder, self.values, workdir / "logs" / "setup.log"
            )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        self.project = project_name("flashlab", self.spec.name, secrets.token_hex(3))
        self._env = {name.upper(): str(port) for name, port in ports.items()}
        self._env |= {k: render(v, self.values) for k, v in self.start_spec.env.items()}
        register_live(self)
        try:
            up = ["up", "-d", "--remove-orphans", *(["--build"] if self.start_spec.build else [])]
            self._compose(*up, timeout=BUILD_UP_TIMEOUT_S)
            self._info = StackInfo(
                platform=self.name,
                base_url=self.base_url(),
                redis_url=self._redis_url(),
                admin_token="",
                workdir=str(workdir),
                extra={
                    "project": self.project,
                    "compose_file": str(compose_file),
                    "compose": self._cli.record(),  # `docker compose` (v2) or docker-compose
                },
            )
            for service in self.start_spec.services:
                self._wait_serving(service, READY_TIMEOUT_S)
            return self.status()
        except BaseException:
            self.stop()
            raise

    def _profiles(self) -> list[str]:
        return []

    def components(self) -> list[Component]:
        services = self.start_spec.services
        out = []
        for name, container in sorted(self._containers().items()):
            state = container.attrs.get("State", {})
            role = services[name].role if name in services else None
            restarts = int(container.attrs.get("RestartCount", 0))
            out.append(Component(
                name=name, kind=KINDS[role], pid=state.get("Pid") or None,
                container=container.id, port=self._ready_port(name),
                restarts=restarts + self._manual_starts.get(name, 0),
                running=container.status == "running",
            ))  # fmt: skip
        return out

    def _ready_port(self, service: str) -> int | None:
        spec = self.start_spec.services.get(service)
        if spec is None or spec.ready is None or spec.ready.tcp is None:
            return None
        return int(render(spec.ready.tcp, self.values).rpartition(":")[2])

    def _redis_url(self) -> str:
        for name, service in self.start_spec.services.items():
            if service.role is not None and service.role.value == "redis":
                port = self._ready_port(name)
                if port is not None:
                    return f"redis://127.0.0.1:{port}/0"
        return ""

    def _wait_serving(self, component: str, timeout_s: float) -> None:
        """Until the service runs and its `ready` check passes (bounded)."""
        service = self.start_spec.services.get(component)
        ready = service.ready if service else None
        deadline = time.monotonic() + (ready.timeout_s if ready else timeout_s)
        while True:
            container = self._container(component)
            if container.status == "running" and self._ready(ready):
                return
            if container.status == "exited" and container.attrs.get("RestartCount", 0) == 0:
                raise StackStartError(f"{component} exited at start; {self._logs_tail(3)}")
            if time.monotonic() > deadline:
                raise StackStartError(f"{component} not ready ({container.status})")
            time.sleep(0.2)

    def _ready(self, ready: Any) -> bool:
        if ready is None:
            return True
        if ready.tcp is not None:
            host, _, port = render(ready.tcp, self.values).rpartition(":")
            return tcp_open(int(port), host or "127.0.0.1")
        url = render(ready.http, self.values)
        return http_ok(url if "://" in url else self.base_url() + "/" + url.lstrip("/"))
