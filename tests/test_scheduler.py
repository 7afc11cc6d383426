"""The fault scheduler: timing, repeat, recording (FAULTS_SCHEMA), errors, stop() always recovers.

Against real processes: a redis-server and the fault proxy for the network faults, and a full
local stack with the process engine for the run-shaped test (actor-kill + redis-pause)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import support

from flashlab.chaos.faults.fault import FaultContext
from flashlab.chaos.proxy.control import ProxyControl
from flashlab.chaos.scheduler import FaultScheduler
from flashlab.chaos.scheduler import expand
from flashlab.chaos.spec import FaultSpec
from flashlab.core.platform import StackInfo
from flashlab.core.rundir import FAULTS_SCHEMA
from flashlab.system import procs
from flashlab.system.platforms.local import free_port
from flashlab.system.supervisor import wait_until

ROOT = Path(__file__).resolve().parent.parent


def spec(fault: str, at_s: float, duration_s: float = 0.0, **kw: object) -> FaultSpec:
    return FaultSpec.model_validate({"fault": fault, "at_s": at_s, "duration_s": duration_s, **kw})


@dataclass
class Rig:
    info: StackInfo
    control: ProxyControl


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """redis-server + the fault proxy in front of it (no API): enough for network faults."""
    work = tmp_path_factory.mktemp("sched")
    rport, pport, cport = free_port(), free_port(), free_port()
    redis_proc = procs.spawn(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(rport),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        name="test-redis",
        log_path=work / "redis.log",
    )
    proxy_proc = procs.spawn(
        [
            sys.executable,
            "-m",
            "flashlab.chaos.proxy",
            "--listen",
            f"127.0.0.1:{pport}",
            "--upstream",
            f"127.0.0.1:{rport}",
            "--control",
            f"127.0.0.1:{cport}",
        ],
        name="test-proxy",
        cwd=ROOT,
        log_path=work / "proxy.log",
    )
    control = ProxyControl(f"http://127.0.0.1:{cport}")
    try:
        control.wait_ready(timeout_s=15)
        info = StackInfo(
            platform="local",
            base_url="http://127.0.0.1:1",
            redis_url=f"redis://127.0.0.1:{rport}/0",
            admin_token="unused",
            extra={"proxy_control_url": f"http://127.0.0.1:{cport}"},
        )
        yield Rig(info, control)
    finally:
        control.close()
        procs.terminate(proxy_proc.pid)
        procs.terminate(redis_proc.pid)


def rows(scheduler: FaultScheduler) -> list[dict]:
    table = scheduler.table()
    assert table.schema == FAULTS_SCHEMA
    # In the lab's own process every row names the driver as the injector (the nemesis: a node).
    assert set(table.column("node").to_pylist()) <= {"driver"}
    return table.to_pylist()


def test_expand_unrolls_repeat_in_time_order() -> None:
    firings = expand(
        [
            spec("latency", 1.0, 0.2, repeat={"every_s": 2.0, "count": 3}),
            spec("reset", 2.0),
        ]
    )
    assert [(at, s.fault) for at, s in firings] == [
        (1.0, "latency"),
        (2.0, "reset"),
        (3.0, "latency"),
        (5.0, "latency"),
    ]


def test_schedule_injects_on_time_and_recovers_after_duration(rig: Rig) -> None:
    specs = [
        spec("latency", 0.1, 0.3, params={"ms": 50}, repeat={"every_s": 0.6, "count": 2}),
        spec("blackhole", 0.2, 0.2),
    ]
    t0 = time.time_ns()
    scheduler = FaultScheduler(specs, FaultContext(info=rig.info), t0).start()
    try:
        assert scheduler.wait(timeout_s=30)
    finally:
        scheduler.stop()
    got = rows(scheduler)
    assert [(r["fault"], r["index"]) for r in got] == [
        ("latency", 0),
        ("blackhole", 1),
        ("latency", 2),
    ]
    for r, (at_s, duration_s) in zip(got, [(0.1, 0.3), (0.2, 0.2), (0.7, 0.3)], strict=True):
        assert r["error"] is None, r["error"]
        assert r["target"] == "proxy"
        assert r["inject_ns"] >= t0 + at_s * 1e9  # never early
        assert r["recover_ns"] - r["inject_ns"] >= duration_s * 1e9  # held at least duration_s
        observed = json.loads(r["observed"])
        assert observed["inject"]["toxic"]["name"] == f"{r['fault']}-{r['index']}"
        assert observed["recover"]["removed"] is True
    assert json.loads(got[0]["params"]) == {"ms": 50.0, "direction": "down", "link": "store"}
    assert json.loads(got[1]["observed"])["inject"]["probe"]["result"] == "timeout"
    assert rig.control.toxics() == []


def test_failed_injection_is_recorded_and_the_run_goes_on(rig: Rig) -> None:
    # No platform and no engine in this context: these two must fail, the latency must not.
    specs = [spec("redis-pause", 0.0, 0.1), spec("actor-kill", 0.0), spec("latency", 0.05, 0.1)]
    scheduler = FaultScheduler(specs, FaultContext(info=rig.info), time.time_ns()).start()
    try:
        assert scheduler.wait(timeout_s=30)
    finally:
        scheduler.stop()
    by_fault = {r["fault"]: r for r in rows(scheduler)}
    assert by_fault["redis-pause"]["error"].startswith(
        "inject: FaultError: this fault needs a stack"
    )
    assert "load engine" in by_fault["actor-kill"]["error"]
    assert by_fault["latency"]["error"] is None
    assert all(r["recover_ns"] is not None for r in by_fault.values())  # recovery always attempted


def test_stop_recovers_what_is_injected_and_skips_the_future(rig: Rig) -> None:
    specs = [spec("latency", 0.0, 600.0), spec("reset", 500.0, 1.0)]
    t0 = time.time_ns()
    scheduler = FaultScheduler(specs, FaultContext(info=rig.info), t0).start()
    try:
        wait_until(lambda: bool(rig.control.toxics()), "toxic injected", 15, lambda: True)
    finally:
        scheduler.stop(timeout_s=30)
    assert rig.control.toxics() == []  # never leave a toxic on
    (row,) = rows(scheduler)
    assert row["fault"] == "latency" and row["error"] is None
    assert row["recover_ns"] - row["inject_ns"] < 600 * 1e9  # cut short by stop()
    assert scheduler.skipped() == 1
    scheduler.stop()  # idempotent


def test_run_shaped_schedule_with_process_engine(make_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The orchestrator's use: for_run(...) started from the engine's on_start, stopped after."""
    from flashlab.core.contract import ResetRequest
    from flashlab.simulator.engines import get_engine
    from flashlab.simulator.engines.engine import LoadPlan
    from flashlab.simulator.scenario import Scenario
    from flashlab.system.admin import AdminClient

    with make_stack(workers=2) as (platform, info):
        with AdminClient(info.base_url, info.admin_token) as admin:
            admin.reset(ResetRequest(productId="sched", stock=100))
        engine = get_engine("process")
        plan = LoadPlan(
            run_id="sched-test",
            base_url=info.base_url,
            product_id="sched",
            scenario=Scenario.model_validate(
                {"shoppers": 400, "arrival": {"kind": "ramp", "duration_s": 3.0}, "duration_s": 10}
            ),
            seed=7,
            workers=2,
            connections=16,
            tmp_dir=str(tmp_path),
        )
        specs = [spec("redis-pause", 0.3, 0.5), spec("actor-kill", 1.0, params={"worker": 1})]
        box: dict[str, FaultScheduler] = {}

        def on_start(t0_ns: int) -> None:
            box["s"] = FaultScheduler.for_run(specs, platform, info, engine, t0_ns).start()

        batches: list[object] = []
        try:
            result = engine.run(plan, on_batch=batches.append, on_start=on_start)
        finally:
            if "s" in box:
                box["s"].stop()
        by_fault = {r["fault"]: r for r in rows(box["s"])}
        assert by_fault["redis-pause"]["error"] is None
        assert json.loads(by_fault["redis-pause"]["observed"])["inject"]["paused"] is True
        assert by_fault["actor-kill"]["error"] is None, by_fault["actor-kill"]["error"]
        assert by_fault["actor-kill"]["target"] == "engine-worker-1"
        assert 1 in result.lost_workers
        redis = next(c for c in platform.components() if c.name == "redis")
        assert redis.running  # continued, not left stopped


def test_a_closed_gate_injects_nothing_and_halt_recovers_at_once(rig: Rig) -> None:
    """The steady-state gate is asked once, before the first injection; halt() cuts a held fault
    short without waiting (what a tripped guard or Ctrl-C calls)."""
    asked: list[int] = []

    def closed() -> bool:
        asked.append(1)
        return False

    gated = FaultScheduler(
        [spec("latency", 0.0, 30.0, params={"ms": 50}), spec("reset", 0.1)],
        FaultContext(info=rig.info),
        time.time_ns(),
        gate=closed,
    ).start()
    try:
        support.poll(lambda: gated.gated, "the gate to refuse the faults", 15)
    finally:
        gated.stop()
    assert asked == [1] and rows(gated) == [] and gated.skipped() == 2
    assert rig.control.stats()["toxics"] == []

    held = FaultScheduler(
        [spec("latency", 0.0, 60.0, params={"ms": 50})],
        FaultContext(info=rig.info),
        time.time_ns(),
        gate=lambda: True,
    ).start()
    try:
        support.poll(lambda: rig.control.stats()["toxics"], "the latency toxic to be on", 15)
        held.halt()  # returns at once; the fault's own thread recovers it
        support.poll(lambda: not rig.control.stats()["toxics"], "the toxic to be removed", 15)
    finally:
        held.stop()
    (row,) = rows(held)
    assert row["error"] is None and row["recover_ns"] - row["inject_ns"] < 60 * 1e9
