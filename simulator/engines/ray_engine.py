"""The Ray engine: W actors, each driving its share of shoppers on a uvloop thread.

The driver polls `actor.drain()` for Arrow IPC shipments. `ray_address` attaches to an existing
cluster.

A local cluster binds to 127.0.0.1 only (Ray's single-machine mode and node IP; before, gcs_server
and raylet listened on `::` and the dashboard agent on the interface address), runs no dashboard
and no metrics collection, and inherits the load CPUs from the pinned driver.

Attached (`ray_address`), the engine checks the address answers (a bounded TCP connect, before
the run directory exists), turns Ray's version mismatch and a cluster too small for the actors
into one-line UserErrors, and spreads the actors over the cluster's nodes with a SPREAD placement
group (one 1-CPU bundle per actor); where each actor ran is in EngineResult.actors (the manifest).

A local cluster is started per run with every file it writes kept under the run's temp dir:
the session dir (`_temp_dir`) and the auth token (Ray >= 2.52 turns token auth on by default
for a new local cluster and would write ~/.ray/auth_token; we point RAY_AUTH_TOKEN_PATH at a
file in the temp dir instead). Every process the session started (gcs_server, raylet, workers,
agents) is tracked by PID and reaped after `ray.shutdown()`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from flashlab.core.errors import UserError
from flashlab.core.isolation import pin_process
from flashlab.core.isolation import pin_self
from flashlab.simulator.engines.engine import Collector
from flashlab.simulator.engines.engine import EngineResult
from flashlab.simulator.engines.engine import LoadPlan
from flashlab.simulator.engines.engine import OnStart
from flashlab.simulator.engines.engine import PoolEngine
from flashlab.simulator.engines.engine import cpu_seconds
from flashlab.simulator.engines.process import decode_shipment
from flashlab.simulator.engines.process import encode_shipment
from flashlab.simulator.schedule import ShopperPlan
from flashlab.simulator.schedule import VuPlan
from flashlab.simulator.shopper import DriveSpec
from flashlab.simulator.shopper import Shipment
from flashlab.simulator.shopper import drive

READY_TIMEOUT_S = 120.0
ATTACH_CONNECT_TIMEOUT_S = 5.0  # --ray-address: a refused or silent GCS port fails this fast
PLACEMENT_TIMEOUT_S = 60.0  # the SPREAD placement group must be placed within this
POLL_S = 0.1
START_LEAD_S = 0.5  # actors get t0 through Ray calls: leave room so they all start on time
OBJECT_STORE_BYTES = 100 * 1024**2  # shipments are small; Ray's default would claim 30% of RAM
MAX_SOCKET_DIR = 40  # AF_UNIX paths are capped at 107 bytes; Ray appends ~65 under _temp_dir
LOOPBACK = "127.0.0.1"
LOOPBACK_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a single-node Ray on 127.0.0.1
_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")


class ShopperActor:
    """One Ray actor: drives its shoppers on its own uvloop thread, buffers shipments for drain().

    The drive runs on a uvloop loop in a thread of its own, exactly as in the inline and process
    engines, not on the actor's asyncio loop: Ray's loop is the stock asyncio one, and sharing it
    with drain() calls made every request dearer than on the other engines."""

    def __init__(
        self,
        spec: DriveSpec,
        shoppers: list[ShopperPlan],
        vus: list[VuPlan],
        cpus: list[int] | None = None,
    ) -> None:
        # A local Ray already inherits the load CPUs from the pinned driver; an attached cluster
        # on this machine does not, so the actor pins itself (every thread) too.
        self.cpus = cpus
        pin_process(cpus)
        self.spec, self.shoppers, self.vus = spec, shoppers, vus
        self.outbox: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.cpu: float | None = None
        self.stopped = False  # the run's cooperative stop, set by stop()
        self.error: str | None = None

    async def where(self) -> dict[str, Any]:
        """Where this actor runs: its node's id and IP address and its PID (for the manifest)."""
        # start-up cost: only this path pays for ray (an optional extra), uvloop
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
        }

    async def start(self, t0_ns: int, deadline_ns: int) -> None:
        self.thread = threading.Thread(
            target=self._drive, args=(t0_ns, deadline_ns), name="flashlab-drive", daemon=True
        )
        self.thread.start()

    def _drive(self, t0_ns: int, deadline_ns: int) -> None:
        # start-up cost: only this path pays for uvloop
        import uvloop

        pin_self(self.cpus)
        try:
            stopped = lambda: self.stopped  # noqa: E731 - set by stop() on the actor's loop
            uvloop.run(
                drive(self.spec, self.shoppers, t0_ns, deadline_ns, self._keep, self.vus, stopped)
            )
        except BaseException as exc:  # reported by the next drain(), never lost
            self.error = repr(exc)

    def _keep(self, sh: Shipment) -> None:
        if sh.final:
            self.cpu = cpu_seconds()  # before the final shipment is visible to drain()
        encoded = encode_shipment(sh)
        with self.lock:
            self.outbox.append(encoded)

    async def stop(self) -> None:
        """Stop launching shoppers and cancel attempts in flight (drive() polls the flag)."""
        self.stopped = True

    async def drain(self) -> tuple[list[tuple[Any, ...]], float | None, str | None]:
        """(shipments since last drain, CPU seconds once finished, error text if driving failed)."""
        with self.lock:
            out, self.outbox = self.outbox, []
        return out, self.cpu, self.error


def check_reachable(address: str, timeout_s: float = ATTACH_CONNECT_TIMEOUT_S) -> None:
    """--ray-address answers a TCP connect within `timeout_s` (else one-line UserError).

    Ray's own attach retries a dead address for about a minute; this fails in seconds, before
    the run directory or the stack exist. `auto` (the cluster this node belongs to) is Ray's to find.
    """
    if address == "auto":
        return
    if address.startswith("ray://"):
        raise UserError(
            f"--ray-address: {address!r} is a Ray Client address, which the ray engine does not "
            "use; run flashlab on a node of the cluster and give its GCS address (host:6379)"
        )
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise UserError(
            f"--ray-address: {address!r} is not host:port (the cluster's GCS address, "
            "e.g. 10.0.0.5:6379) or 'auto'"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UserError(
            f"--ray-address: no Ray cluster answers at {address} ({why}, {timeout_s:g} s bound)"
        ) from None


def version_mismatch_line(message: str) -> str | None:
    """Ray's multi-line "Version mismatch" error as one line naming both versions; None otherwise."""
    if "Version mismatch" not in message:
        return None
    found = re.findall(r"Ray: (\S+)\s+Python: (\S+)", message)
    if len(found) != 2:
        return f"--ray-address: Ray version mismatch ({' '.join(message.split())})"
    (cluster_ray, cluster_py), (our_ray, our_py) = found
    return (
        f"--ray-address: Ray version mismatch: the cluster runs Ray {cluster_ray} (Python "
        f"{cluster_py}), this flashlab Ray {our_ray} (Python {our_py}); install ray=={cluster_ray} "
        "here or attach to a cluster of the same versions"
    )


CLIENT_INIT_ATTEMPTS = 3
CLIENT_RETRY_S = 2.0


def _client_init(ray: Any, address: str) -> None:
    """ray.init through Ray Client, tried up to CLIENT_INIT_ATTEMPTS times when the cluster's proxy
    could not start the per-client server ("Starting Ray client server failed"): seen twice in
    this project's full test runs on a busy 2-core machine - the server process the proxy
    spawned died during start-up, and a new connection gets a new server (and port). Other errors, and
    the last attempt's, propagate unchanged."""
    for attempt in range(1, CLIENT_INIT_ATTEMPTS + 1):
        try:
            ray.init(address=address, logging_level="error")
            return
        except ConnectionError as exc:
            if attempt == CLIENT_INIT_ATTEMPTS or "client server failed" not in str(exc):
                raise
            with contextlib.suppress(Exception):
                ray.shutdown()
            time.sleep(CLIENT_RETRY_S)


def attach_error(address: str, exc: BaseException) -> UserError:
    """Why ray.init(address=...) failed, as the one-line bad-input error the CLI prints."""
    text = str(exc)
    line = version_mismatch_line(text)
    if line is None:
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        line = f"--ray-address: cannot attach to the Ray cluster at {address}: {first}"
    return UserError(line)


def _ray_pkg_dir() -> str:
    # start-up cost: only this path pays for ray (an optional extra), uvloop
    import ray

    return os.path.dirname(ray.__file__)


def session_processes(before: set[int]) -> list[psutil.Process]:
    """Our descendants that belong to Ray (started after `before` was taken)."""
    pkg = _ray_pkg_dir()
    found = []
    for proc in psutil.Process().children(recursive=True):
        if proc.pid in before:
            continue
        try:
            name = proc.name()
            cmd = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if name in ("raylet", "gcs_server") or cmd.startswith("ray::") or pkg in cmd:
            found.append(proc)
    return found


@contextlib.contextmanager
def _local_ray_env(ray_dir: Path) -> Iterator[None]:
    """Token auth with the token file inside the run's temp dir; env restored afterwards."""
    token_file = ray_dir / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    saved = {k: os.environ.get(k) for k in (*_AUTH_VARS, LOOPBACK_VAR)}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's "no cluster" mode: every daemon on 127.0.0.1 instead of the machine's interface
    # address (without it, gcs_server and raylet listened on `::` and the dashboard agent on the
    # interface address: reachable from the network). Inherited by the daemons; the driver read the variable
    # at `import ray`, so its constant is switched for the run too.
    os.environ[LOOPBACK_VAR] = "0"
    constants = _ray_constants()
    saved_cluster = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    _reset_token_cache()
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_cluster
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reset_token_cache()


@contextlib.contextmanager
def _ray_errors_to_stderr() -> Iterator[None]:
    """Ray's driver prints cluster error messages (e.g. "(raylet) Raylet is terminated" when a
    node is lost) on stdout; `flashlab run --json` needs stdout to stay one JSON document, so
    for the run they go to stderr, as every other diagnostic does."""
    # start-up cost: only this path pays for ray (an optional extra), uvloop
    from ray._private import worker

    original = worker.print_to_stdstream

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    worker.print_to_stdstream = to_stderr
    try:
        yield
    finally:
        worker.print_to_stdstream = original


def _ray_constants() -> Any:
    # start-up cost: only this path pays for ray (an optional extra), uvloop
    from ray._private import ray_constants

    return ray_constants


def _reset_token_cache() -> None:
    # The driver's C++ config caches the auth mode and its loader caches the token (both read at
    # import); re-read them as Ray's own enable_token_auth_by_default() does. The compiled
    # module's stub (ray/_raylet.pyi) does not declare either name: hence the two ignores.
    with contextlib.suppress(ImportError, AttributeError):
        # start-up cost: only this path pays for ray (an optional extra), uvloop
        from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]
        from ray._raylet import Config  # type: ignore[attr-defined]

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


class _RayDir:
    """`<tmp_dir>/ray`, or a short /tmp dir linked from there when the path is too long for sockets."""

    def __init__(self, tmp_dir: str | None) -> None:
        base = Path(tmp_dir) if tmp_dir else Path(tempfile.mkdtemp(prefix="flashlab-"))
        base.mkdir(parents=True, exist_ok=True)
        self.link = base.resolve() / "ray"
        self.short: Path | None = None
        if len(str(self.link)) > MAX_SOCKET_DIR:
            self.short = Path(tempfile.mkdtemp(prefix="flray-"))
            if not self.link.exists():
                self.link.symlink_to(self.short)
            self.path = self.short
        else:
            self.link.mkdir(exist_ok=True)
            self.path = self.link

    def cleanup(self) -> None:
        if self.short is not None:  # the long-path case: don't leave session files in /tmp
            shutil.rmtree(self.short, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.link.unlink()


class RayEngine(PoolEngine):
    name = "ray"
    worker_prefix = "ray"

    def __init__(self) -> None:
        super().__init__()
        self.actors: list[dict[str, Any]] = []  # where each actor ran (EngineResult.actors)

    def preflight(self, workers: int, ray_address: str | None) -> None:
        if ray_address is not None:
            check_reachable(ray_address)

    def kill_worker(self, index: int) -> bool:
        # start-up cost: only this path pays for ray (an optional extra), uvloop
        import ray

        with self._lock:
            if not 0 <= index < len(self._workers):
                return False
            actor = self._workers[index]
        ray.kill(actor, no_restart=True)
        return True

    def _run(self, plan: LoadPlan, collector: Collector, on_start: OnStart | None) -> EngineResult:
        # start-up cost: only this path pays for ray (an optional extra), uvloop
        import ray

        # An open connection to the cluster named by ray_address is the caller's (the lab's
        # nemesis holds one until its faults are recovered): used, and left to its owner.
        attached = plan.ray_address is not None and ray.is_initialized()
        if ray.is_initialized() and not attached:
            raise RuntimeError("ray engine: Ray is already initialised in this process")
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        ray_dir = _RayDir(plan.tmp_dir)
        cpu0 = cpu_seconds()
        seen: dict[int, psutil.Process] = {}
        try:
            with contextlib.ExitStack() as stack:
                if plan.ray_address is None:
                    stack.enter_context(_local_ray_env(ray_dir.path))
                stack.enter_context(_ray_errors_to_stderr())
                if not attached:
                    self._init_once_more_on_timeout(ray, plan, ray_dir.path, before)
                    stack.callback(ray.shutdown)
                self.actors = []
                cpu_workers = self._drive(ray, plan, collector, on_start, before, seen)
                end_ns = time.time_ns()
                seen.update({p.pid: p for p in session_processes(before)})
        finally:
            if not attached:  # else the session, its workers and the nemesis are the owner's
                seen.update({p.pid: p for p in session_processes(before)})
                self._reap(list(seen.values()))
            ray_dir.cleanup()
            with self._lock:
                self._workers = []
        result = collector.result(self.name, end_ns, cpu_workers, cpu_seconds() - cpu0)
        result.actors = self.actors
        return result

    def _init_once_more_on_timeout(
        self, ray: Any, plan: LoadPlan, ray_dir: Path, before: set[int]
    ) -> None:
        """ray.init, retried once when Ray's fixed 30 s wait for its raylet ran out.

        Pinned to the load CPUs of a busy 2-core machine, a local Ray's start-up took ~20 s
        (median, stability benchmark) and now and then missed that wait; the first attempt's
        processes are reaped before the second starts."""
        try:
            self._init(ray, plan, ray_dir)
        except Exception as exc:
            if plan.ray_address is not None or "timed out during startup" not in str(exc):
                raise
            with contextlib.suppress(Exception):
                ray.shutdown()
            leftovers = session_processes(before)
            for proc in leftovers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            psutil.wait_procs(leftovers, timeout=5)
            self._init(ray, plan, ray_dir)

    @staticmethod
    def _init(ray: Any, plan: LoadPlan, ray_dir: Path) -> None:
        common = dict(
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            logging_level="error",
        )
        if plan.ray_address is not None and plan.ray_address.startswith("ray://"):
            # Ray Client (e.g. the Compose `ray` profile): the server-side init is the cluster's.
            _client_init(ray, plan.ray_address)
            return
        if plan.ray_address is not None:
            try:
                ray.init(address=plan.ray_address, **common)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    ray.shutdown()
                raise attach_error(plan.ray_address, exc) from None
            return
        ray.init(
            address=None,
            num_cpus=max(plan.workers, 1),
            object_store_memory=OBJECT_STORE_BYTES,
            _temp_dir=str(ray_dir),
            _node_ip_address=LOOPBACK,
            # Only what the engine needs: no metrics export (the lab measures load itself).
            _system_config={"enable_metrics_collection": False},
            **common,
        )

    def _drive(
        self,
        ray: Any,
        plan: LoadPlan,
        collector: Collector,
        on_start: OnStart | None,
        before: set[int],
        seen: dict[int, psutil.Process],
    ) -> float:
        # start-up cost: only this path pays for ray (an optional extra), uvloop
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        actor_cls = ray.remote(num_cpus=1, max_restarts=0, max_concurrency=64)(ShopperActor)
        shares = collector.shares
        group = _spread_group(ray, plan, len(collector.names))
        actors = [
            actor_cls.options(
                name=None,
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, i),
            ).remote(plan.spec(n), shares.shoppers[i], shares.vus[i], plan.cpus)
            for i, n in enumerate(collector.names)
        ]
        with self._lock:
            self._workers = actors
        places = ray.get([a.where.remote() for a in actors], timeout=READY_TIMEOUT_S)
        self.actors = [
            {"worker": n, **place, "shoppers": len(shares.shoppers[i])}
            for i, (n, place) in enumerate(zip(collector.names, places, strict=True))
        ]
        seen.update({p.pid: p for p in session_processes(before)})
        deadline = collector.start_clock(on_start, START_LEAD_S)
        t0 = collector.t0_ns
        ray.get([a.start.remote(t0, deadline) for a in actors], timeout=READY_TIMEOUT_S)
        return self._pump(ray, actors, collector)

    def _pump(self, ray: Any, actors: list[Any], collector: Collector) -> float:
        hard = collector.hard_stop_ns()
        pending = {a.drain.remote(): i for i, a in enumerate(actors)}
        cpu = 0.0
        told_to_stop = False
        while pending:
            if collector.stop_overdue(hard, pending.values(), self.kill_worker):
                break
            if collector.stop.is_set() and not told_to_stop:
                told_to_stop = True
                for i in set(pending.values()):
                    actors[i].stop.remote()  # fire and forget: a killed actor just ignores it
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    shipments, worker_cpu, error = ray.get(ref)
                except ray.exceptions.RayActorError:
                    collector.worker_lost(i)
                    continue
                for msg in shipments:
                    collector.ship(i, decode_shipment(msg))
                if error is not None:
                    raise RuntimeError(f"ray engine: actor {i} failed: {error}")
                if collector.finished[i]:
                    cpu += worker_cpu or 0.0
                else:
                    pending[actors[i].drain.remote()] = i
            collector.tick()
            if ready:
                time.sleep(POLL_S / 2)  # drains are cheap, but not free for a busy actor
        collector.tick(force=True)
        return cpu

    @staticmethod
    def _reap(procs: list[psutil.Process]) -> None:
        """After ray.shutdown(): wait briefly for the session's processes, then SIGKILL stragglers."""
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)


def _spread_group(ray: Any, plan: LoadPlan, actors: int) -> Any:
    """A SPREAD placement group of one 1-CPU bundle per actor: shoppers over as many nodes as
    the cluster has. An attached cluster that cannot hold them is bad input (one line, exit 2)."""
    # start-up cost: only this path pays for ray (an optional extra), uvloop
    from ray.util.placement_group import placement_group
    from ray.util.placement_group import remove_placement_group

    where = f"the Ray cluster at {plan.ray_address}" if plan.ray_address else "the local Ray"
    cpus = ray.cluster_resources().get("CPU", 0.0)
    if plan.ray_address is not None and cpus < actors:
        raise UserError(
            f"--ray-address: {where} has {cpus:g} CPU(s); engine.workers={actors} "
            "needs one per actor (lower --workers or add nodes)"
        )
    group = placement_group([{"CPU": 1}] * actors, strategy="SPREAD")
    ready, _ = ray.wait([group.ready()], timeout=PLACEMENT_TIMEOUT_S)
    if not ready:
        remove_placement_group(group)
        msg = f"{where} could not place {actors} actors (1 CPU each) in {PLACEMENT_TIMEOUT_S:g} s"
        if plan.ray_address is not None:
            raise UserError(f"--ray-address: {msg}")
        raise RuntimeError(f"ray engine: {msg}")
    return group
