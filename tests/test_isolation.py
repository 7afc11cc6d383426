"""CPU isolation: the split decision, bad input, and real processes on the CPUs they were given.

The stack tests start real redis-server/uvicorn/nginx (and the fault proxy) and read each PID's
affinity with psutil; the engine tests read the generator side the same way (the driver, process
workers, Ray's actors and daemons). They need two CPUs in this process' affinity set and skip
with that reason otherwise.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import support
import yaml

from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.isolation import IsolationError
from flashlab.core.isolation import auto_split
from flashlab.core.isolation import describe
from flashlab.core.isolation import parse_split
from flashlab.core.isolation import pinned
from flashlab.core.isolation import resolve
from flashlab.lab.experiment import ExperimentError
from flashlab.lab.experiment import parse_experiment
from flashlab.simulator.engines import get_engine
from flashlab.simulator.engines.engine import LoadPlan
from flashlab.simulator.scenario import Scenario
from flashlab.simulator.scenario import Spike
from flashlab.system.platforms.compose_file import COMPOSE_FILE
from flashlab.system.platforms.compose_file import derive_compose
from flashlab.system.truth import read_truth

ROOT = Path(__file__).resolve().parent.parent
CPUS = sorted(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="isolation needs 2 CPUs here")
STACK, LOAD = ([CPUS[0]], [CPUS[1]]) if len(CPUS) >= 2 else ([], [])


# --- the decision (pure) -------------------------------------------------------------------------


def test_auto_splits_half_and_half_stack_first() -> None:
    assert auto_split([0, 1]) == ([0], [1])
    assert auto_split([0, 1, 2, 3]) == ([0, 1], [2, 3])
    assert auto_split([2, 5, 7]) == ([2, 5], [7])  # the stack takes the odd CPU


def test_single_cpu_is_recorded_as_not_applied_with_the_reason() -> None:
    iso = resolve("auto", available=[3])
    assert iso.requested and not iso.applied
    assert iso.stack is None and iso.load is None  # nothing gets pinned
    assert "only 1 CPU" in (iso.reason or "")
    record = iso.to_dict()
    assert set(record) == {"mode", "requested", "applied", "stack_cpus", "load_cpus", "reason"}
    assert "NOT applied" in describe(record)


def test_off_shares_every_cpu_and_is_not_requested() -> None:
    iso = resolve("off", available=[0, 1])
    assert (iso.requested, iso.applied, iso.stack_cpus, iso.load_cpus) == (
        False,
        False,
        (0, 1),
        (0, 1),
    )


@pytest.mark.parametrize(
    ("stack", "load", "needle"),
    [([0], [0], "share"), ([], [1], "empty"), ([0], [9], "not available")],
)
def test_impossible_manual_splits_are_refused(stack, load, needle) -> None:
    with pytest.raises(IsolationError, match=needle):
        resolve("manual", stack, load, available=[0, 1])


def test_cpu_split_syntax() -> None:
    assert parse_split("0:1") == ([0], [1])
    assert parse_split("0-1:2,3") == ([0, 1], [2, 3])
    for bad in ("0", "a:1", "3-1:0"):
        with pytest.raises(IsolationError):
            parse_split(bad)


@pytest.mark.parametrize(
    ("isolation", "needle"),
    [
        ({"mode": "manual", "stack_cpus": [0]}, "needs both"),
        ({"mode": "manual", "stack_cpus": [0], "load_cpus": [0]}, "share"),
        ({"mode": "auto", "stack_cpus": [0]}, "need mode manual"),
        ({"mode": "sometimes"}, "isolation.mode"),
        ({"cpus": [0]}, "isolation.cpus: unknown field"),
    ],
)
def test_experiment_field_errors_name_the_field(isolation, needle) -> None:
    with pytest.raises(ExperimentError, match="isolation") as err:
        parse_experiment({"isolation": isolation})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_compose_services_get_the_stack_cpuset() -> None:
    doc = derive_compose(yaml.safe_load(COMPOSE_FILE.read_text()), 2, [0, 2])
    assert {s.get("cpuset") for s in doc["services"].values()} == {"0,2"}
    unpinned = derive_compose(yaml.safe_load(COMPOSE_FILE.read_text()), 2)
    assert all("cpuset" not in s for s in unpinned["services"].values())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flashlab.cli", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--cpus", "0:0"], "--cpus"),
        (["--cpus", "0:4096"], "--cpus"),
        (["--isolation", "sideways"], "--isolation"),
        (["--isolation", "off", "--cpus", "0:1"], "--cpus"),
    ],
)
def test_cli_bad_split_is_one_line_exit_2_and_no_run_dir(tmp_path: Path, args, flag) -> None:
    out = tmp_path / "run"
    proc = _cli("run", "experiments/smoke.yaml", "--out", str(out), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


# --- real processes ------------------------------------------------------------------------------


def _affinity(proc: psutil.Process) -> list[int]:
    return sorted(proc.cpu_affinity() or [])


def _stack_processes(platform) -> list[psutil.Process]:  # type: ignore[no-untyped-def]
    found = []
    for comp in platform.components():
        proc = psutil.Process(comp.pid)
        found += [proc, *proc.children(recursive=True)]  # nginx's workers
    return found


@needs_two_cpus
def test_every_stack_process_runs_on_the_stack_cpus(make_stack) -> None:  # type: ignore[no-untyped-def]
    with make_stack(workers=2, proxy=True, cpus=STACK) as (platform, _info):
        procs = _stack_processes(platform)
        names = {p.name() for p in procs}
        assert {"redis-server", "nginx"} <= names, names
        assert len(procs) >= 6  # redis, proxy, 2 workers, nginx master + >= 1 worker
        assert {p.pid: _affinity(p) for p in procs} == {p.pid: STACK for p in procs}
        # A respawned worker (killed by a fault) is pinned too.
        old = next(c.pid for c in platform.components() if c.name == "api-1")
        platform.signal("api-1", signal.SIGKILL)
        support.poll(
            lambda: any(
                c.name == "api-1" and c.pid != old and c.running for c in platform.components()
            ),
            "api-1 respawned",
            30,
        )
        new = next(c.pid for c in platform.components() if c.name == "api-1")
        assert _affinity(psutil.Process(new)) == STACK
    assert sorted(os.sched_getaffinity(0)) == CPUS  # the lab process itself was not pinned


def _reset(local_stack, product: str, stock: int) -> None:  # type: ignore[no-untyped-def]
    from flashlab.system.admin import AdminClient

    AdminClient(local_stack.base_url, local_stack.admin_token).reset(
        ResetRequest(product_id=product, stock=stock, strategy=Strategy.lua)
    )


def _plan(local_stack, product: str, tmp_path: Path, **kw) -> LoadPlan:  # type: ignore[no-untyped-def]
    scenario = Scenario(shoppers=400, arrival=Spike(window_s=0.5), duration_s=30)
    return LoadPlan(
        run_id=f"iso-{product}",
        base_url=local_stack.base_url,
        product_id=product,
        scenario=scenario,
        seed=3,
        connections=32,
        tmp_dir=str(tmp_path / "tmp"),
        cpus=LOAD,
        **kw,
    )


@needs_two_cpus
def test_inline_engine_drives_on_the_load_cpus_and_restores(local_stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _reset(local_stack, "iso-inline", 40)
    seen: set[tuple[int, ...]] = set()
    result = get_engine("inline").run(
        _plan(local_stack, "iso-inline", tmp_path, client="raw"),
        on_batch=lambda _b: None,
        on_progress=lambda _p: seen.add(tuple(sorted(os.sched_getaffinity(0)))),
    )
    assert seen == {tuple(LOAD)}  # every progress callback ran on the driving loop, pinned
    assert sorted(os.sched_getaffinity(0)) == CPUS  # restored afterwards
    assert result.rows >= 400 and len(read_truth(local_stack.redis_url, "iso-inline").orders) == 40


@needs_two_cpus
def test_process_engine_workers_run_on_the_load_cpus(local_stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _reset(local_stack, "iso-proc", 40)
    engine = get_engine("process")
    seen: dict[int, list[int]] = {}

    def on_progress(_p) -> None:  # type: ignore[no-untyped-def]
        for w in list(engine._workers):
            if w.pid and w.is_alive():
                seen[w.pid] = _affinity(psutil.Process(w.pid))

    engine.run(
        _plan(local_stack, "iso-proc", tmp_path, workers=2),
        on_batch=lambda _b: None,
        on_progress=on_progress,
    )
    assert len(seen) == 2 and all(a == LOAD for a in seen.values()), seen
    assert sorted(os.sched_getaffinity(0)) == CPUS


def _listening(proc: psutil.Process) -> list[str]:
    return [
        c.laddr.ip
        for c in proc.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr
    ]


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


@needs_two_cpus
def test_ray_daemons_and_actors_are_pinned_and_listen_on_loopback_only(
    local_stack, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from flashlab.simulator.engines.ray_engine import session_processes

    _reset(local_stack, "iso-ray", 40)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    seen: dict[int, tuple[str, list[int], list[str]]] = {}

    def on_progress(_p) -> None:  # type: ignore[no-untyped-def]
        for proc in session_processes(before):
            try:
                seen[proc.pid] = (proc.name(), _affinity(proc), _listening(proc))
            except psutil.Error:
                continue  # a short-lived helper that ended

    result = get_engine("ray").run(
        _plan(local_stack, "iso-ray", tmp_path, workers=1, client="raw"),
        on_batch=lambda _b: None,
        on_progress=on_progress,
    )
    names = {name for name, _a, _l in seen.values()}
    assert {"raylet", "gcs_server"} <= names, names
    assert any(name.startswith("ray::ShopperActor") for name in names), names
    assert {pid: a for pid, (_n, a, _l) in seen.items()} == {pid: LOAD for pid in seen}
    listening = [ip for _n, _a, ips in seen.values() for ip in ips]
    assert listening and all(_is_loopback(ip) for ip in listening), listening
    # The raw client inside the actor bought exactly the stock; start-up is outside the window.
    assert len(read_truth(local_stack.redis_url, "iso-ray").orders) == 40
    assert result.startup_s > 0 and result.client == "raw"
    assert sorted(os.sched_getaffinity(0)) == CPUS


def test_pinned_is_a_no_op_without_cpus() -> None:
    before = os.sched_getaffinity(0)
    with pinned(None):
        assert os.sched_getaffinity(0) == before


def test_a_real_run_records_the_split_in_manifest_summary_and_report(smoke_run: Path) -> None:
    import json

    manifest = json.loads((smoke_run / "manifest.json").read_text())
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert summary["isolation"] == manifest["isolation"]
    iso = manifest["isolation"]
    assert iso["mode"] == "auto" and iso["requested"] is True
    assert iso["applied"] is (len(CPUS) >= 2)
    if iso["applied"]:
        assert (iso["stack_cpus"], iso["load_cpus"], iso["reason"]) == (STACK, LOAD, None)
    assert describe(iso) in (smoke_run / "report.html").read_text()
    assert manifest["engine"]["startup_s"] >= 0
    # The host-speed probe ran on each side of the split, pinned there, and was recorded.
    speed = summary["host_speed"]
    assert speed == manifest["host_speed"]
    sides = {"stack": STACK, "load": LOAD} if iso["applied"] else {"host": None}
    assert {side: rec["cpus"] for side, rec in speed.items()} == sides
    assert all(rec["samples"] >= 0 for rec in speed.values())


def test_stack_up_bad_split_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = _cli("stack", "up", "--cpus", "0:0", "--state-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--cpus" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "stack.json").exists()


def test_a_single_cpu_run_goes_on_says_so_once_and_records_it(tmp_path: Path) -> None:
    """A real single-CPU process (its affinity set to one CPU before exec), not a simulated one."""
    import json

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "flashlab.cli", "run", "experiments/smoke.yaml", "--json"]
    proc = subprocess.run(
        [*argv, "--out", str(out), "--no-report"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.sched_setaffinity(0, {CPUS[0]}),
    )
    assert proc.returncode == 0, proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if "CPU split" in ln]
    assert len(notes) == 1 and "NOT applied" in notes[0] and "only 1 CPU" in notes[0], proc.stderr
    iso = json.loads(proc.stdout)["isolation"]
    assert (iso["requested"], iso["applied"], iso["stack_cpus"]) == (True, False, [CPUS[0]])
    assert json.loads((out / "manifest.json").read_text())["isolation"] == iso
    assert set(json.loads(proc.stdout)["host_speed"]) == {"host"}  # one probe: nothing to split
