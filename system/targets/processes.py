"""The process platform of a target: the processes its file's `start:` lists, started, owned and stopped by PID.

Each process gets the lab's free loopback ports (`{port}`, `{redis_port}`, ...), its own log in
the target's temp dir (`{workdir}`, removed at stop) and the stack's CPUs; it is started in file
order, each one once the one before it is ready. Its `role` is its component kind for faults
(redis -> `redis`, db -> `db`, worker -> `api`, gateway -> `nginx`); a `restart: true` process
(every worker, by default) is respawned when it dies.

Network faults need the lab's TCP fault proxy on a link: `store` puts it between the target's
processes and their store (the process with role redis or db: every *other* process is told the
proxy's port for the store's port placeholder, while the store itself, the reset and the truth
use the real one), `client` between the shoppers and `base_url`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flashlab.core.placeholders import PORT_NAME
from flashlab.core.placeholders import placeholders
from flashlab.core.placeholders import render
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.core.platform import StackStartError
from flashlab.core.target import STORE_ROLES
from flashlab.core.target import Process
from flashlab.core.target import Ready
from flashlab.core.target import Role
from flashlab.core.target import Setup
from flashlab.core.target import TargetSpec
from flashlab.core.target import local_values
from flashlab.system import procs
from flashlab.system.platforms import free_port
from flashlab.system.supervisor import HOST
from flashlab.system.supervisor import Slot
from flashlab.system.supervisor import SupervisedPlatform
from flashlab.system.supervisor import Supervisor
from flashlab.system.supervisor import http_ok
from flashlab.system.supervisor import tcp_open

# A role's component kind: what the faults look for (flashlab.chaos.faults).
KINDS: dict[Role | None, str] = {
    Role.redis: "redis",
    Role.db: "db",
    Role.worker: "api",
    Role.gateway: "nginx",
    None: "service",
}
LINKS = ("store", "client")  # where a network fault's proxy sits (flashlab.chaos.faults.network)


def store_port_name(spec: TargetSpec) -> str | None:
    """The port placeholder of the target's store (the first process with role redis or db,
    read from its `ready.tcp`): where the `store` link's proxy goes. None: no such placeholder."""
    for process in spec.processes():
        if process.role in STORE_ROLES and process.ready and process.ready.tcp:
            names = [n for n in placeholders(process.ready.tcp) if PORT_NAME.match(n)]
            return names[0] if names else None
    return None


def base_port_name(spec: TargetSpec) -> str | None:
    """The port placeholder of `base_url` (where the `client` link's proxy goes)."""
    names = [n for n in placeholders(spec.base_url) if PORT_NAME.match(n)]
    return names[0] if names else None


def link_problem(spec: TargetSpec, link: str) -> str | None:
    """Why a network fault on `link` cannot work on this target (None: it can)."""
    if not isinstance(spec.start, list):
        return "network faults need processes the lab starts itself (start: a list)"
    if link == "store" and store_port_name(spec) is None:
        return (
            "the store link needs a process with role redis or db whose ready.tcp names a port "
            "placeholder (e.g. ready: {tcp: '127.0.0.1:{redis_port}'})"
        )
    if link == "client" and base_port_name(spec) is None:
        return "the client link needs base_url to name a port placeholder ({port})"
    return None


def run_setup(steps: list[Setup], folder: Path, values: Mapping[str, Any], log: Path) -> None:
    """Each setup command once, unless what it `creates` exists; StackStartError on failure."""
    for step in steps:
        cwd = (folder / render(step.cwd, values)) if step.cwd else folder
        if step.creates and (cwd / render(step.creates, values)).exists():
            continue
        argv = shlex.split(render(step.command, values))
        procs.run_once(
            argv, cwd=cwd, timeout_s=step.timeout_s, where=f"setup {step.command!r}",
            error=StackStartError, log_path=log,
        )  # fmt: skip


class ProcessTarget(SupervisedPlatform):
    """A target's own processes on loopback (or nothing, when its file has no `start:`)."""

    name = "target"

    def __init__(self, spec: TargetSpec, config: StackConfig, links: frozenset[str] = frozenset()):
        super().__init__(config)
        for link in links:
            problem = link_problem(spec, link)
            if problem:
                raise PlatformConfigError(f"target {spec.name}: {problem}")
        self.spec = spec
        self.links = links
        self._sup = Supervisor()
        self._workdir: Path | None = None
        self._info: StackInfo | None = None
        self.values: dict[str, Any] = {}  # the placeholders' values as the truth sees them

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> StackInfo:
        if self._info is not None:
            return self.status()
        atexit.register(self.stop)  # an exception or sys.exit never leaves children behind
        self._workdir = Path(tempfile.mkdtemp(prefix=f"flashlab-{self.spec.name}-"))
        # mkdtemp makes it 0700: a process that drops root (PostgreSQL runs as its own user)
        # could not enter {workdir}. Its contents are the target's, not secrets.
        self._workdir.chmod(0o755)
        try:
            ports = {name: free_port() for name in self.spec.port_names()}
            self.values = local_values(self.spec, self._workdir, ports)
            (self._workdir / "logs").mkdir()
            run_setup(self.spec.setup, self.spec.folder, self.values, self._log("setup"))
            extra = self._plan()
            self._sup.start_in_order()
        except BaseException:
            self.stop()
            raise
        self._sup.watch()
        self._info = StackInfo(
            platform=self.name,
            base_url=extra.pop("load_base_url"),
            redis_url=self._redis_url(),
            admin_token="",
            components=self.components(),
            workdir=str(self._workdir),
            supervisor_pid=os.getpid(),
            extra=extra,
        )
        return self.status()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        self._sup.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._info = None

    # ------------------------------------------------------------------ plan

    def base_url(self) -> str:
        """The target's own base URL (the truth's and the health checks' way in)."""
        return render(self.spec.base_url, self.values).rstrip("/")

    def _log(self, name: str) -> Path:
        assert self._workdir is not None
        return self._workdir / "logs" / f"{name}.log"

    def _plan(self) -> dict[str, Any]:
        """Every slot, in start order (the store proxy right after the store, the client proxy
        last); what StackInfo.extra says about them."""
        extra: dict[str, Any] = {"load_base_url": self.base_url(), "roles": {}}
        routed = dict(self.values)
        store = store_port_name(self.spec) if "store" in self.links else None
        if store is not None:
            routed[store] = free_port()
        for process in self.spec.processes():
            own = self.values if process.role in STORE_ROLES else routed
            self._add_process(process, own)
            extra["roles"][process.name] = process.role.value if process.role else None
            if store is not None and process.role in STORE_ROLES:
                upstream = self.values[store]
                extra["proxy_control_url"] = self._add_proxy("proxy", routed[store], upstream)
                store = None
        if "client" in self.links:
            base = base_port_name(self.spec)
            assert base is not None  # link_problem refused it otherwise
            listen = free_port()
            extra["client_proxy_control_url"] = self._add_proxy(
                "client-proxy", listen, self.values[base]
            )
            extra["load_base_url"] = render(self.spec.base_url, self.values | {base: listen})
        return extra

    def _add_process(self, process: Process, values: Mapping[str, Any]) -> None:
        ready, port = self._ready_check(process.ready, values)
        self._sup.add(
            Slot(
                name=process.name,
                kind=KINDS[process.role],
                port=port,
                start=self._starter(process, values),
                ready=ready,
                respawn=process.respawns,
                logs=[self._log(process.name)],
                ready_timeout_s=process.ready.timeout_s if process.ready else 10.0,
            )
        )

    def _ready_check(
        self, ready: Ready | None, values: Mapping[str, Any]
    ) -> tuple[Callable[[], bool], int | None]:
        if ready is None:
            return (lambda: True), None
        if ready.tcp is not None:
            host, _, port = render(ready.tcp, values).rpartition(":")
            host = host.strip("[]") or HOST
            return (lambda: tcp_open(int(port), host)), int(port)
        assert ready.http is not None
        url = render(ready.http, values)
        if not urlsplit(url).scheme:
            url = render(self.spec.base_url, values).rstrip("/") + "/" + url.lstrip("/")
        return (lambda: http_ok(url)), urlsplit(url).port

    def _starter(self, process: Process, values: Mapping[str, Any]) -> Callable[[], procs.Tracked]:
        command = process.command
        argv = (
            shlex.split(render(command, values))
            if isinstance(command, str)
            else [render(part, values) for part in command]
        )
        env = {**os.environ, **{k: render(v, values) for k, v in process.env.items()}}
        cwd = self.spec.folder / render(process.cwd, values) if process.cwd else self.spec.folder
        if not cwd.is_dir():
            raise StackStartError(f"{process.name}: cwd {cwd} is not a folder")
        if shutil.which(argv[0], path=env.get("PATH")) is None and not (cwd / argv[0]).exists():
            raise StackStartError(f"{process.name}: {argv[0]!r} not found (PATH, or in {cwd})")

        def start() -> procs.Tracked:
            return procs.spawn(
                argv,
                name=process.name,
                env=env,
                log_path=self._log(process.name),
                cwd=cwd,
                cpus=self.config.cpus,
            )

        return start

    def _add_proxy(self, name: str, listen: int, upstream: int) -> str:
        control = free_port()
        argv = [
            sys.executable, "-m", "flashlab.chaos.proxy",
            "--listen", f"{HOST}:{listen}",
            "--upstream", f"{HOST}:{upstream}",
            "--control", f"{HOST}:{control}",
        ]  # fmt: skip
        log = self._log(name)
        self._sup.add(
            Slot(
                name=name,
                kind="proxy",
                port=listen,
                start=lambda: procs.spawn(argv, name=name, log_path=log, cpus=self.config.cpus),
                ready=lambda: tcp_open(control) and tcp_open(listen),
                logs=[log],
            )
        )
        return f"http://{HOST}:{control}"

    def _redis_url(self) -> str:
        """Where the target's Redis answers directly (INFO for the redis faults' evidence)."""
        for comp in self._sup.components():
            if comp.kind == "redis" and comp.port is not None:
                return f"redis://{HOST}:{comp.port}/0"
        truth = self.spec.truth
        if truth is not None and truth.redis is not None:
            return render(truth.redis.url, self.values | {"product": "", "stock": 0})
        return ""


def wait_serving(url: str, timeout_s: float) -> bool:
    """GET `url` answers 2xx within `timeout_s` (polling)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if http_ok(url):
            return True
        time.sleep(0.1)
    return False
