"""The local platform: the stack as child processes of this one, on loopback, respawned when killed.

It supervises redis-server, uvicorn API workers, nginx (and prometheus, the fault proxy) as
tracked child processes in a run-owned temp dir, and respawns killed workers.

Start order is dependency order (redis -> proxy -> api-* -> nginx -> prometheus) and stop is the
reverse. Every child goes through `flashlab.system.procs.spawn`, so it is in its own session (Ctrl-C hits
only the supervisor), dies with the supervisor (PDEATHSIG), and is reaped by PID - never by name.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal as _signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import redis

from flashlab.core.platform import ComponentNotRunning
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import PlatformError
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.core.platform import StackStartError
from flashlab.core.platform import check_durability
from flashlab.system import procs
from flashlab.system.config import uvicorn_argv
from flashlab.system.config import write as write_config
from flashlab.system.platforms import free_port
from flashlab.system.supervisor import HOST
from flashlab.system.supervisor import Slot
from flashlab.system.supervisor import SupervisedPlatform
from flashlab.system.supervisor import Supervisor
from flashlab.system.supervisor import http_ok
from flashlab.system.supervisor import tcp_open

PORT_ATTEMPTS = 3
UPSTREAM_KEEPALIVE = 64
# sockaddr_un holds 108 bytes with the terminating NUL.
MAX_UNIX_SOCKET_PATH = 107

APT_HINTS = {  # binary -> how to install it (Debian); scripts/bootstrap.sh installs the same
    "redis-server": "apt-get install redis-server",
    "nginx": "apt-get install nginx-light",
    "prometheus": "apt-get install prometheus",
}
REQUIRED_BINARIES = ("redis-server", "nginx")  # prometheus is optional (skipped with a note)


# The local platform's earlier name for its errors; every one it raises is a PlatformError kind
# (flashlab.core.platform), so `except StackError` still catches them all.
StackError = PlatformError


def _port_clash(message: str) -> bool:
    return "in use" in message.lower()


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        hint = APT_HINTS.get(name, f"install {name}")
        raise StackStartError(f"{name} not found on PATH; install it with: {hint}")
    return path


def _redis_ping(port: int) -> bool:
    try:
        client = redis.Redis(host=HOST, port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
        with contextlib.closing(client):
            return bool(client.ping())
    except redis.RedisError:
        return False


class LocalPlatform(SupervisedPlatform):
    """Real processes on loopback: redis-server, N uvicorn workers, nginx, optional prometheus/proxy."""

    name = "local"

    def __init__(self, config: StackConfig) -> None:
        check_durability(config.durability)
        if config.workers < 1:
            raise PlatformConfigError(f"workers must be >= 1 (got {config.workers})")
        super().__init__(config)
        self.token = config.admin_token or secrets.token_urlsafe(24)
        self._sup = Supervisor(on_death=self._forget_metrics)
        self._workdir: Path | None = None
        self._owns_workdir = config.workdir is None
        self._info: StackInfo | None = None
        # Set by _plan: Redis' unix socket for the API workers (None: TCP), and their Redis URL.
        self._redis_socket: Path | None = None
        self._api_redis_url = ""
        self.notes: list[str] = []

    # ------------------------------------------------------------------ paths

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ComponentNotRunning("stack not started")
        return self._workdir

    def _path(self, *parts: str) -> Path:
        path = self.workdir.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _log(self, name: str) -> Path:
        return self._path("logs", f"{name}.log")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> StackInfo:
        if self._info is not None:
            return self.status()
        require_binary("redis-server")
        require_binary("nginx")
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_once()
                break
            except StackStartError as exc:
                # Free ports are picked then bound by the child: another stack on this machine
                # can take one in between. Start over on fresh ports rather than fail the run.
                if attempt == PORT_ATTEMPTS or not _port_clash(str(exc)):
                    raise
        self._sup.watch()
        self._info = self._make_info()
        return self.status()

    def _start_once(self) -> None:
        atexit.register(self.stop)  # safety net: an exception or sys.exit never leaves children
        self._sup = Supervisor(on_death=self._forget_metrics)
        if self.config.workdir:
            self._workdir = Path(self.config.workdir).resolve()
            self._workdir.mkdir(parents=True, exist_ok=True)
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="flashlab-"))
        try:
            self._plan()
            # Everything boots in parallel (each worker's imports cost ~0.5 s of CPU); readiness
            # is awaited in dependency order.
            self._sup.start_all()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the monitor's respawning, terminate children newest-first, reap, clean up."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        self._sup.stop()
        if self._workdir is not None and self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._info = None

    # ------------------------------------------------------------------ plan

    def _plan(self) -> None:
        cfg = self.config
        redis_port = free_port()
        self._add("redis", "redis", redis_port, self._start_redis, lambda: _redis_ping(redis_port))
        api_redis_port = redis_port
        if cfg.proxy:
            api_redis_port = free_port()
            control = free_port()
            self._proxy_control = f"http://{HOST}:{control}"
            self._add(
                "proxy",
                "proxy",
                api_redis_port,
                lambda: self._start_proxy(api_redis_port, redis_port, control),
                lambda: tcp_open(control) and tcp_open(api_redis_port),
            )
        self._plan_api_redis(api_redis_port)
        multiproc = self.workdir / "prometheus-multiproc"
        shutil.rmtree(multiproc, ignore_errors=True)  # stale mmap files would skew /metrics
        multiproc.mkdir(parents=True)
        self._multiproc = multiproc
        api_ports: list[int] = []
        for index in range(cfg.workers):
            port = free_port()
            api_ports.append(port)
            name = f"api-{index}"
            slot = self._add(
                name,
                "api",
                port,
                self._api_starter(name, port, self._api_redis_url),
                self._http_check(f"http://{HOST}:{port}/healthz"),
            )
            slot.respawn = True
        nginx_port = free_port()
        self._nginx_port = nginx_port
        self._add(
            "nginx",
            "nginx",
            nginx_port,
            lambda: self._start_nginx(nginx_port, api_ports),
            self._http_check(f"http://{HOST}:{nginx_port}/readyz"),
        )
        self._prometheus_url: str | None = None
        if cfg.prometheus:
            if shutil.which("prometheus"):
                port = free_port()
                self._prometheus_url = f"http://{HOST}:{port}"
                self._add(
                    "prometheus",
                    "prometheus",
                    port,
                    lambda: self._start_prometheus(port, nginx_port),
                    self._http_check(f"http://{HOST}:{port}/-/ready"),
                )
            else:
                self.notes.append(f"prometheus not installed ({APT_HINTS['prometheus']}); skipped")
        self._redis_port = redis_port

    def _add(
        self,
        name: str,
        kind: str,
        port: int,
        start: Callable[[], procs.Tracked],
        ready: Callable[[], bool],
    ) -> Slot:
        logs = [self._log(name), self._log(f"{name}-stdout")]
        return self._sup.add(
            Slot(name=name, kind=kind, port=port, start=start, ready=ready, logs=logs)
        )

    @staticmethod
    def _http_check(url: str) -> Callable[[], bool]:
        return lambda: http_ok(url)

    def _plan_api_redis(self, api_redis_port: int) -> None:
        """Where the API workers reach Redis: a unix socket in the workdir, or TCP when the fault
        proxy must sit between them (it speaks TCP) or the socket's path would not fit.

        Over loopback TCP each purchase's round trip costs both the worker and Redis more kernel
        time: the socket raised the lua purchase rate 7-12% at the same CPU in paired runs
        (docs/BENCHMARKS.md, `ceiling`). The lab's own channel (truth, resets) stays on TCP."""
        path = self._path("redis", "redis.sock")
        fits = len(os.fsencode(path)) <= MAX_UNIX_SOCKET_PATH
        self._redis_socket = path if fits and not self.config.proxy else None
        self._api_redis_url = (
            f"unix://{self._redis_socket}?db=0"
            if self._redis_socket
            else f"redis://{HOST}:{api_redis_port}/0"
        )

    def _make_info(self) -> StackInfo:
        extra: dict[str, object] = {"notes": list(self.notes)}
        extra["api_redis_url"] = self._api_redis_url
        if self.config.proxy:
            extra["proxy_control_url"] = self._proxy_control
        return StackInfo(
            platform=self.name,
            base_url=f"http://{HOST}:{self._nginx_port}",
            redis_url=f"redis://{HOST}:{self._redis_port}/0",
            admin_token=self.token,
            components=self.components(),
            workdir=str(self.workdir),
            prometheus_url=self._prometheus_url,
            supervisor_pid=os.getpid(),
            extra=extra,
        )

    # ------------------------------------------------------------------ starters

    def _start_redis(self) -> procs.Tracked:
        conf = self._path("redis", "redis.conf")
        write_config(
            "redis.conf",
            conf,
            bind=HOST,
            port=self._sup.slot("redis").port,
            dir=str(conf.parent),
            durability=self.config.durability,
            logfile=str(self._log("redis")),
            unixsocket=str(self._redis_socket or ""),
        )
        # redis logs to its own logfile; our capture only catches early config errors.
        return procs.spawn(
            [require_binary("redis-server"), str(conf)],
            name="redis",
            log_path=self._log("redis-stdout"),
            cpus=self.config.cpus,
        )

    def _start_proxy(self, listen: int, upstream: int, control: int) -> procs.Tracked:
        argv = [
            sys.executable,
            "-m",
            "flashlab.chaos.proxy",
            "--listen",
            f"{HOST}:{listen}",
            "--upstream",
            f"{HOST}:{upstream}",
            "--control",
            f"{HOST}:{control}",
        ]
        return procs.spawn(
            argv,
            name="proxy",
            env=self._py_env(),
            log_path=self._log("proxy"),
            cpus=self.config.cpus,
        )

    def _py_env(self) -> dict[str, str]:
        # Children run this interpreter, where flashlab is installed (editable in a checkout).
        return dict(os.environ)

    def _api_starter(self, name: str, port: int, redis_url: str) -> Callable[[], procs.Tracked]:
        def start() -> procs.Tracked:
            env = self._py_env()
            env.update(
                FLASHLAB_REDIS_URL=redis_url,
                FLASHLAB_ADMIN_TOKEN=self.token,
                FLASHLAB_REDIS_TIMEOUT_MS=str(self.config.redis_timeout_ms),
                FLASHLAB_REDIS_POOL_SIZE=str(self.config.redis_pool_size),
                FLASHLAB_WORKER_ID=name,
                PROMETHEUS_MULTIPROC_DIR=str(self._multiproc),
            )
            argv = uvicorn_argv(sys.executable, HOST, port, self.config.log_level)
            return procs.spawn(
                argv,
                name=name,
                env=env,
                log_path=self._log(name),
                cwd=self.workdir,
                cpus=self.config.cpus,
            )

        return start

    def _start_nginx(self, port: int, api_ports: list[int]) -> procs.Tracked:
        temp = self._path("nginx", "temp", ".keep").parent
        conf = self._path("nginx", "nginx.conf")
        write_config(
            "nginx.conf",
            conf,
            listen=f"{HOST}:{port}",
            upstreams=[f"{HOST}:{p}" for p in api_ports],
            keepalive=UPSTREAM_KEEPALIVE,
            # Pinned: one worker per stack CPU (older nginx counts every online CPU for `auto`,
            # not the affinity set, and would start workers that only contend).
            worker_processes=len(self.config.cpus) if self.config.cpus else "auto",
            pid_file=str(self._path("nginx", "nginx.pid")),
            error_log=str(self._log("nginx")),
            temp_dir=str(temp),
            # As root, nginx workers would drop to `nobody`, who cannot enter our 0700 temp dir.
            user="root" if os.geteuid() == 0 else "",
        )
        argv = [
            require_binary("nginx"),
            "-c",
            str(conf),
            "-p",
            str(conf.parent),
            "-e",
            str(self._log("nginx")),  # before the config is read, never /var/log/nginx
        ]
        # SIGTERM, not SIGKILL, on supervisor death: only the master can take its workers down.
        return procs.spawn(
            argv,
            name="nginx",
            log_path=self._log("nginx-stdout"),
            pdeathsig=_signal.SIGTERM,
            cpus=self.config.cpus,
        )

    def _start_prometheus(self, port: int, nginx_port: int) -> procs.Tracked:
        conf = self._path("prometheus", "prometheus.yml")
        write_config("prometheus.yml", conf, targets=[f"{HOST}:{nginx_port}"], interval="1s")
        argv = [
            require_binary("prometheus"),
            f"--config.file={conf}",
            f"--storage.tsdb.path={self._path('prometheus', 'data', '.keep').parent}",
            f"--web.listen-address={HOST}:{port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        return procs.spawn(
            argv, name="prometheus", log_path=self._log("prometheus"), cpus=self.config.cpus
        )

    # ------------------------------------------------------------------ monitor

    def _forget_metrics(self, slot: Slot) -> None:
        """A dead API worker's live gauges must not linger in /metrics (its respawn is the
        supervisor's, like the reference's Node cluster: docs/REFERENCE.md)."""
        # start-up cost: only this path pays for prometheus_client
        from prometheus_client import multiprocess

        if slot.kind == "api" and slot.tracked is not None:
            with contextlib.suppress(OSError):
                multiprocess.mark_process_dead(slot.tracked.pid, str(self._multiproc))
