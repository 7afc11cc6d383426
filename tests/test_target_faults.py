"""The fault catalogue on a backend the lab did not build: its processes by role, its links through the proxy.

One real target (targets/pg-atomic.yaml: a throwaway PostgreSQL cluster with role db and the
FastAPI shop with role worker) is started with both fault-proxy links, and each fault is
injected and recovered through the same FaultContext the scheduler uses: the db faults restart
PostgreSQL and its committed orders survive, worker-kill brings the API back, a latency toxic
slows the API's database calls (link store) or the shoppers' requests (link client).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ROOT

from flashlab.chaos.faults import make_fault
from flashlab.chaos.faults.fault import FaultContext
from flashlab.core.platform import StackConfig
from flashlab.core.target import load_target
from flashlab.system.targets.processes import ProcessTarget
from flashlab.system.targets.reset import reset_target
from flashlab.system.targets.truth import read_target_truth

pytestmark = pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")) and not shutil.which("postgres"),
    reason="PostgreSQL server not installed (make test installs it)",
)
PRODUCT = "fault-probe"


@pytest.fixture(scope="module")
def pg() -> Iterator[ProcessTarget]:
    spec = load_target(ROOT / "targets" / "pg-atomic.yaml")
    platform = ProcessTarget(spec, StackConfig(prometheus=False), frozenset({"store", "client"}))
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()


@pytest.fixture
def ctx(pg: ProcessTarget) -> FaultContext:
    reset_target(pg.spec, pg.values, pg.base_url(), PRODUCT, 5)
    return FaultContext(info=pg.status(), platform=pg)


def _buy(pg: ProcessTarget, user: str, via: str | None = None) -> httpx.Response:
    url = (via or pg.base_url()) + "/orders"
    return httpx.post(url, json={"sku": PRODUCT, "customer": user}, timeout=10)


def _rows(pg: ProcessTarget) -> int:
    truth = read_target_truth(pg.spec, pg.values, pg.base_url(), PRODUCT, 5)
    return len(truth.orders)


def _serving(pg: ProcessTarget, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(pg.base_url() + "/ready", timeout=2).status_code == 200:
            return
        time.sleep(0.1)
    pytest.fail("the shop did not get its database back")


@pytest.mark.parametrize("name", ["db-kill", "db-restart"])
def test_db_faults_restart_postgres_and_committed_orders_survive(
    pg: ProcessTarget, ctx: FaultContext, name: str
) -> None:
    assert _buy(pg, f"{name}-a").status_code == 201
    fault = make_fault(name)
    injected = fault.inject(ctx)
    assert fault.target == "postgres"
    assert not next(c for c in pg.components() if c.name == "postgres").running
    assert _buy(pg, f"{name}-b").status_code == 503  # the shop says so, and keeps serving
    recovered = fault.recover(ctx)
    assert recovered["new_pid"] != injected["old_pid"]
    _serving(pg)
    assert _rows(pg) == 1  # the order committed before the crash is still there
    assert _buy(pg, f"{name}-c").status_code == 201


def test_worker_kill_hits_the_process_with_role_worker(
    pg: ProcessTarget, ctx: FaultContext
) -> None:
    before = next(c for c in pg.components() if c.name == "api")
    fault = make_fault("worker-kill")
    injected = fault.inject(ctx)
    assert injected["killed"] == {"api": before.pid}
    recovered = fault.recover(ctx)
    assert recovered["respawned"]["api"] != before.pid
    assert _buy(pg, "after-kill").status_code == 201  # serving again when recover returns


def _timed(call: object) -> float:
    started = time.perf_counter()
    call()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


@pytest.mark.parametrize("link", ["store", "client"])
def test_latency_on_a_link_slows_what_crosses_it(
    pg: ProcessTarget, ctx: FaultContext, link: str
) -> None:
    via = ctx.info.base_url  # the shoppers' way in: through the client proxy
    assert via != pg.base_url()
    fault = make_fault("latency", {"ms": 200, "link": link, "direction": "both"})
    injected = fault.inject(ctx)
    assert injected["toxic"]["params"]["ms"] == 200
    try:
        slow = _timed(lambda: _buy(pg, f"slow-{link}", via))
    finally:
        recovered = fault.recover(ctx)
    assert recovered["removed"] and recovered["toxics_left"] == []
    assert slow >= 200  # one database round trip (store) or the request itself (client)
    direct = _timed(lambda: httpx.get(pg.base_url() + "/healthz", timeout=5))
    assert direct < 200 or link == "store"  # /healthz touches no database
