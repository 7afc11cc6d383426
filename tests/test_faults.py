"""Every fault in the catalogue against a real local stack (redis, proxy, 2 uvicorn workers, nginx):
observed to happen, observed to be recovered, and the API never answers 500 meanwhile."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from flashlab.chaos.faults import FAULTS
from flashlab.chaos.faults import fault_class
from flashlab.chaos.faults import fault_names
from flashlab.chaos.faults import fault_param_error
from flashlab.chaos.faults import make_fault
from flashlab.chaos.faults import needs_proxy
from flashlab.chaos.faults.fault import FaultContext
from flashlab.chaos.faults.fault import FaultError
from flashlab.chaos.faults.fault import FaultParams
from flashlab.chaos.faults.fault import host_port
from flashlab.chaos.faults.fault import tcp_ping
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.system.admin import AdminClient
from flashlab.system.platforms.local import LocalPlatform

STOCK = 1_000_000  # never sells out: every answer is about the fault, not the stock
LOAD_THREADS = 4
LOAD_MAX_REQUESTS = 2_000  # per load window, across threads
LOAD_MAX_S = 30.0
_products = itertools.count()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPlatform, StackInfo]]:
    """One stack with the fault proxy for this module; faults always recover, so it is reusable.
    Its workdir (logs) is pytest's, so a failure's API tracebacks can be quoted and kept."""
    workdir = tmp_path_factory.mktemp("fault-stack")
    config = StackConfig(
        workers=2, durability="none", prometheus=False, proxy=True, workdir=str(workdir)
    )
    platform = LocalPlatform(config)
    try:
        info = platform.start()
        yield platform, info
    finally:
        platform.stop()


@pytest.fixture
def ctx(stack: tuple[LocalPlatform, StackInfo]) -> Iterator[FaultContext]:
    platform, info = stack
    context = FaultContext(info=info, platform=platform)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def product(stack: tuple[LocalPlatform, StackInfo]) -> str:
    """A fresh product per test (Redis may have lost everything in the previous test's fault)."""
    _, info = stack
    pid = f"fault-{next(_products)}"
    with AdminClient(info.base_url, info.admin_token) as admin:
        admin.wait_ready(timeout_s=30)
        admin.reset(ResetRequest(productId=pid, stock=STOCK, strategy=Strategy.lua))
    return pid


class Load:
    """Bounded background shoppers: at most LOAD_MAX_REQUESTS buys and LOAD_MAX_S seconds."""

    def __init__(self, base_url: str, product_id: str) -> None:
        self.base_url = base_url
        self.product_id = product_id
        self.outcomes: list[int | str] = []  # HTTP status, or the transport error's class name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._threads = [
            threading.Thread(target=self._shop, daemon=True) for _ in range(LOAD_THREADS)
        ]

    def _shop(self) -> None:
        deadline = time.monotonic() + LOAD_MAX_S
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                n = next(self._ids)
                if n >= LOAD_MAX_REQUESTS:
                    return
                try:
                    r = client.post(
                        "/api/v1/shop/buy",
                        json={"productId": self.product_id},
                        headers={"x-user-id": f"u{n}"},
                    )
                    outcome: int | str = r.status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                    time.sleep(0.01)  # nginx down: do not spin on connection refused
                with self._lock:
                    self.outcomes.append(outcome)

    def seen(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_requests(self, n: int, timeout_s: float = 20.0) -> None:
        """Until `n` more answers arrived (proves the load ran during the fault window)."""
        target = self.seen() + n
        deadline = time.monotonic() + timeout_s
        while self.seen() < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def statuses(self) -> Counter[int | str]:
        with self._lock:
            return Counter(self.outcomes)


@contextmanager
def load(info: StackInfo, product_id: str) -> Iterator[Load]:
    driver = Load(info.base_url, product_id)
    for t in driver._threads:
        t.start()
    try:
        yield driver
    finally:
        driver._stop.set()
        for t in driver._threads:
            t.join(timeout=LOAD_MAX_S)


def api_recovered(info: StackInfo, product_id: str, timeout_s: float = 30.0) -> int:
    """After recovery a fresh shopper gets a contract answer again, not 5xx or a dropped
    connection (bounded poll, not a sleep). 404 is a recovery too: with durability none a Redis
    restart legitimately forgets the product. Returns the status."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    with httpx.Client(base_url=info.base_url, timeout=5.0) as client:
        for n in itertools.count():
            try:
                r = client.post(
                    "/api/v1/shop/buy",
                    json={"productId": product_id},
                    headers={"x-user-id": f"after-{n}"},
                )
                if r.status_code < 500:
                    return r.status_code
                last = r.status_code
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            if time.monotonic() > deadline:
                raise AssertionError(f"API did not recover: last answer {last}")
            time.sleep(0.05)


def api_errors(info: StackInfo) -> str:
    """The distinct last lines of the API workers' tracebacks (why a 500 happened)."""
    found: Counter[str] = Counter()
    for log in Path(info.workdir or ".").glob("logs/api-*.log"):
        lines = log.read_text(errors="replace").splitlines()
        for prev, line in itertools.pairwise(lines):
            if prev.startswith("  ") and not line.startswith(" ") and "Error" in line:
                found[re.sub(r"0x[0-9a-f]+", "0x...", line)[:160]] += 1
    return f"API log errors: {dict(found)}" if found else "no API tracebacks"


def run_fault(
    ctx: FaultContext,
    info: StackInfo,
    product_id: str,
    name: str,
    params: dict[str, Any] | None = None,
    hold: Callable[[Load], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Counter[int | str]]:
    """Inject under load, hold the fault while load runs, recover, check the API is back."""
    fault = make_fault(name, params)
    with load(info, product_id) as driver:
        driver.wait_requests(20)  # steady state first
        injected = fault.inject(ctx)
        (hold or (lambda d: d.wait_requests(30)))(driver)
        recovered = fault.recover(ctx)
        driver.wait_requests(20)
    after = api_recovered(info, product_id)
    if name not in ("redis-restart", "redis-kill"):  # only these may lose the product
        assert after == 200, f"after {name}: {after}"
    statuses = driver.statuses()
    assert 500 not in statuses, f"API answered 500 during {name}: {statuses}; {api_errors(info)}"
    return injected, recovered, statuses


def component(ctx: FaultContext, name: str) -> Any:
    return next(c for c in ctx.components() if c.name == name)


# --- registry ---------------------------------------------------------------------------------


def _documented_faults() -> set[str]:
    """The names in the first cell of docs/CHAOS.md's catalogue table (`| fault | what happens |`)."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "CHAOS.md").read_text()
    table = text[text.index("| fault | what happens") :].split("\n\n", 1)[0]
    cells = [row.split("|")[1] for row in table.splitlines()[2:]]
    return {name for cell in cells for name in re.findall(r"`([a-z0-9-]+)`", cell)}


@pytest.mark.parametrize("name", list(FAULTS))
def test_every_registered_fault_is_described_typed_and_documented(name: str) -> None:
    """The catalogue is its registry: each entry loads under its own name, describes itself,
    types its params (unknown ones refused; the defaults valid, since the matrix runs every fault
    with them) and has its row in docs/CHAOS.md."""
    cls = fault_class(name)
    assert cls.name == name and cls.description
    assert issubclass(cls.Params, FaultParams) and cls.Params.model_config.get("extra") == "forbid"
    assert fault_param_error(name, {}) is None
    assert fault_param_error(name, {"no_such_param": 1}) is not None
    assert name in _documented_faults(), f"{name} has no row in docs/CHAOS.md's catalogue"


def test_the_catalogue_documents_only_registered_faults() -> None:
    assert _documented_faults() <= set(FAULTS)
    assert needs_proxy(["redis-kill", "latency"]) and not needs_proxy(["redis-kill", "worker-kill"])


def test_param_errors_name_the_field() -> None:
    assert fault_param_error("latency", {"ms": -1}).startswith("ms:")
    assert fault_param_error("worker-kill", {"count": 0}).startswith("count:")
    assert fault_param_error("worker-kill", {"count": "all"}) is None
    assert "allowed: ms, direction, link" in fault_param_error("latency", {"msec": 5})
    assert fault_param_error("latency", {"link": "moon"}).startswith("link:")
    with pytest.raises(ValueError, match="unknown fault"):
        fault_class("nope")


def test_network_fault_without_proxy_is_a_clear_error() -> None:
    info = StackInfo(
        platform="local",
        base_url="http://127.0.0.1:1",
        redis_url="redis://127.0.0.1:1/0",
        admin_token="t",
    )
    with pytest.raises(FaultError, match="needs the TCP fault proxy"):
        make_fault("latency").inject(FaultContext(info=info))
    with pytest.raises(FaultError, match="load engine"):
        make_fault("actor-kill").inject(FaultContext(info=info))


# --- redis ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["redis-restart", "redis-kill"])
def test_redis_stop_faults_restart_a_new_process(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str, name: str
) -> None:
    _, info = stack
    started = time.monotonic()
    injected, recovered, statuses = run_fault(ctx, info, product, name)
    assert injected["signal"] == ("SIGTERM" if name == "redis-restart" else "SIGKILL")
    assert recovered["new_pid"] != injected["old_pid"]
    assert recovered["run_id_after"] != injected["run_id_before"]  # Redis itself says: new process
    assert recovered["uptime_after_s"] <= time.monotonic() - started + 1  # started after inject
    assert component(ctx, "redis").running
    assert 503 in statuses  # the API noticed, and said so with the contract's code


def test_redis_pause_stops_and_continues_the_same_process(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str
) -> None:
    _, info = stack
    pid = component(ctx, "redis").pid
    injected, recovered, statuses = run_fault(ctx, info, product, "redis-pause")
    assert injected["pid"] == pid and injected["paused"] is True  # kernel state T, via the platform
    assert injected["probe"]["result"] == "timeout"
    assert recovered["probe"]["result"] == "ok"
    assert component(ctx, "redis").pid == pid
    assert 503 in statuses


# --- api workers ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, "all"])
def test_worker_kill_is_respawned_by_the_supervisor(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str, count: int | str
) -> None:
    _, info = stack
    before = {c.name: (c.pid, c.restarts) for c in ctx.components("api")}
    injected, recovered, _ = run_fault(ctx, info, product, "worker-kill", {"count": count})
    killed = injected["killed"]
    assert len(killed) == (1 if count == 1 else len(before))
    for name, old_pid in killed.items():
        assert old_pid == before[name][0]
        assert recovered["respawned"][name] != old_pid
        assert recovered["restarts_after"][name] == before[name][1] + 1


# --- nginx ------------------------------------------------------------------------------------


def test_nginx_reload_replaces_workers_keeps_master(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str
) -> None:
    _, info = stack
    master = component(ctx, "nginx").pid
    injected, recovered, _ = run_fault(ctx, info, product, "nginx-reload")
    assert injected["master_pid"] == master == recovered["master_pid"]
    assert injected["workers_after"] and not set(injected["workers_after"]) & set(
        injected["workers_before"]
    )


def test_nginx_kill_refuses_connections_then_restarts(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str
) -> None:
    _, info = stack
    injected, recovered, statuses = run_fault(ctx, info, product, "nginx-kill")
    assert recovered["new_pid"] != injected["old_pid"]
    assert statuses["ConnectError"] > 0  # nobody listened while it was down


# --- network, through the proxy ----------------------------------------------------------------


def _proxy_rtt_ms(ctx: FaultContext) -> float:
    probe = tcp_ping(*host_port(ctx.proxy.stats()["listen"]), timeout_s=5)
    assert probe["result"] == "ok"
    return probe["ms"]


def test_latency_adds_measured_delay_to_api_calls(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str
) -> None:
    _, info = stack
    seen: dict[str, float] = {}

    def hold(driver: Load) -> None:
        seen["proxy_ms"] = _proxy_rtt_ms(ctx)
        t = time.perf_counter()
        r = httpx.post(
            f"{info.base_url}/api/v1/shop/buy",
            json={"productId": product},
            headers={"x-user-id": "latency-probe"},
            timeout=10,
        )
        seen["api_ms"] = (time.perf_counter() - t) * 1000
        assert r.status_code == 200
        driver.wait_requests(10)

    injected, recovered, _ = run_fault(ctx, info, product, "latency", {"ms": 150}, hold)
    assert injected["toxic"]["params"]["ms"] == 150
    assert injected["probe"]["ms"] >= 150 and seen["proxy_ms"] >= 150
    assert seen["api_ms"] >= 150  # a purchase needs at least one Redis round trip
    assert recovered["removed"] and recovered["toxics_left"] == []
    assert recovered["probe"]["result"] == "ok" and recovered["probe"]["ms"] < 150


def test_jitter_is_seeded_latency(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str
) -> None:
    _, info = stack
    params = {"ms": 60, "jitter_ms": 40, "seed": 3}
    injected, recovered, _ = run_fault(ctx, info, product, "jitter", params)
    assert injected["toxic"]["type"] == "latency"
    assert injected["probe"]["ms"] >= 20  # ms - jitter_ms
    assert recovered["removed"]


def test_reset_drops_api_connections(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str
) -> None:
    _, info = stack
    before = ctx.proxy.stats()
    injected, recovered, statuses = run_fault(ctx, info, product, "reset")
    assert injected["resets"] > before["resets"]  # the workers' pooled connections were cut
    assert injected["probe"]["result"] in ("reset", "closed")
    assert recovered["probe"]["result"] == "ok"
    assert 503 in statuses


def test_blackhole_times_out_redis_calls(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str
) -> None:
    _, info = stack
    injected, recovered, statuses = run_fault(ctx, info, product, "blackhole")
    assert injected["probe"]["result"] == "timeout"
    assert recovered["probe"]["result"] == "ok"
    assert 503 in statuses


def test_bandwidth_toxic_is_applied_and_removed(
    ctx: FaultContext, stack: tuple[LocalPlatform, StackInfo], product: str
) -> None:
    _, info = stack
    injected, recovered, statuses = run_fault(ctx, info, product, "bandwidth", {"kb_per_s": 8})
    assert injected["toxic"]["params"]["kb_per_s"] == 8
    assert recovered["removed"] and recovered["toxics_left"] == []
    assert statuses[200] > 0


def test_faults_command_lists_the_catalogue_as_json() -> None:
    import json
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "flashlab.cli", "faults", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    entries = {e["name"]: e for e in json.loads(r.stdout)}
    assert set(entries) == set(fault_names())
    assert {p["name"]: p["default"] for p in entries["latency"]["params"]} == {
        "ms": 100.0,
        "direction": "down",
        "link": "store",
    }
    assert entries["latency"]["needs_proxy"] and not entries["redis-kill"]["needs_proxy"]
