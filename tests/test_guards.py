"""Live abort guards, the pre-fault steady-state check, and hypothesis keys that see faults and phases.

Unit tests drive flashlab.lab.guards (grammar, monitor, steady state) with hand-made history batches and explicit clock values; the
end-to-end tests run `flashlab run` on the real local stack (redis, uvicorn workers, nginx, the
fault proxy) and check the run directory and that no process is left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from support import alive
from support import descendants
from support import poll

from flashlab.analysis.hypothesis import HypothesisError
from flashlab.analysis.hypothesis import parse_clause
from flashlab.core.rundir import load_run
from flashlab.lab.abort import AbortSwitch
from flashlab.lab.experiment import ExperimentError
from flashlab.lab.experiment import parse_experiment
from flashlab.lab.guards.grammar import GuardError
from flashlab.lab.guards.grammar import parse_guard
from flashlab.lab.guards.monitor import GuardMonitor
from flashlab.lab.guards.steady import SteadyStateCheck
from flashlab.simulator.history import Op
from flashlab.simulator.history import ops_to_batch

ROOT = Path(__file__).resolve().parent.parent
S = 1_000_000_000
T0 = 1_700_000_000 * S


def _op(i: int, type_: str, complete_s: float, status: int = 200, code: str | None = "ok") -> Op:
    done = T0 + int(complete_s * S)
    return Op(
        run_id="r",
        op_id=f"{i}:1",
        shopper=i,
        user_id=f"u{i}",
        profile="p",
        attempt=1,
        worker="w",
        intended_ns=done - 100_000_000,  # 100 ms response time
        invoke_ns=done - 50_000_000,
        complete_ns=done,
        type=type_,  # type: ignore[arg-type]
        status=status,
        code=code,
    )


def _oks(start: int, n: int, at_s: float) -> list[Op]:
    return [_op(start + k, "ok", at_s) for k in range(n)]


def _errors(start: int, n: int, at_s: float) -> list[Op]:
    return [_op(start + k, "info", at_s, status=0, code=None) for k in range(n)]


# --- grammar and validation ------------------------------------------------------------------------


def test_guard_grammar_and_one_line_errors_with_the_closest_metric() -> None:
    g = parse_guard("p99_5s_ms > 5000 for 10s")
    assert (g.base, g.window_s, g.op, g.value, g.for_s) == ("p99", 5, ">", 5000.0, 10.0)
    assert parse_guard("oversell_live > 0").window_s is None
    assert parse_guard("error_rate_30s >= 0.5").window_s == 30
    with pytest.raises(GuardError, match="did you mean 'oversell_live'"):
        parse_guard("oversel_live > 0")
    with pytest.raises(GuardError, match="did you mean 'p99_5s_ms'"):
        parse_guard("p99_5s > 1")  # a percentile needs its unit
    with pytest.raises(GuardError, match="expected '<metric> <op> <number>"):
        parse_guard("oversell_live is bad")
    with pytest.raises(GuardError):
        parse_guard("error_rate_0s > 0.5")  # windows are 1..300 s


def test_parsing_an_experiment_loads_the_guard_grammar_only() -> None:
    # Experiment files check their guards' text; the live monitor (its thread, its pandas window)
    # and the run watch are the run's business, not the parser's.
    code = (
        "import sys, flashlab.lab.experiment; "
        "print(sorted(m for m in sys.modules if m.startswith('flashlab.lab.guards')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['flashlab.lab.guards', 'flashlab.lab.guards.grammar']"


def test_experiment_refuses_bad_guards_and_clauses_naming_unscheduled_faults() -> None:
    fault = {"fault": "redis-kill", "at_s": 1}
    ok = parse_experiment(
        {
            "faults": [fault],
            "guards": ["oversell_live > 0", "error_rate_5s > 0.5 for 3s"],
            "hypothesis": [
                "recovery.redis-kill.time_to_recover_s < 2",
                "window.redis-kill.availability > 0.2",
                "phase.after_faults.latency_ms.p99 < 800",
            ],
        }
    )
    assert ok.guards == ["oversell_live > 0", "error_rate_5s > 0.5 for 3s"]
    cases = {
        "guards: [0] unknown guard metric 'oversel_live'": {"guards": ["oversel_live > 0"]},
        "did you mean 'redis-kill'": {
            "faults": [fault],
            "hypothesis": ["recovery.redis-kil.time_to_recover_s < 2"],
        },
        "names fault 'redis-kill', which this experiment does not schedule": {
            "hypothesis": ["window.redis-kill.availability > 0.2"]
        },
        "did you mean 'phase.after_faults.latency_ms.p99'": {
            "hypothesis": ["phase.after_fault.latency_ms.p99 < 800"]
        },
    }
    for expected, data in cases.items():
        with pytest.raises(ExperimentError) as err:
            parse_experiment(data)
        line = str(err.value)
        assert expected in line and "\n" not in line, line
        assert line.startswith(("<experiment>: guards:", "<experiment>: hypothesis:")), line


def test_unknown_clause_keys_name_the_closest_valid_key() -> None:
    cases = {
        "oversel == 0": "oversell",
        "latency_ms.p98 < 1": "latency_ms.p99",
        "recovery.redis-kill.time_to_recovr_s < 2": "recovery.redis-kill.time_to_recover_s",
        "window.latency.availabilty > 0.5": "window.latency.availability",
    }
    for text, closest in cases.items():
        with pytest.raises(HypothesisError, match=f"did you mean '{closest}'"):
            parse_clause(text)
    clause = parse_clause("recovery.redis-kill.time_to_recover_s < 2")
    assert clause.fault == "redis-kill"
    by_fault = {"redis-kill": {"recovery": {"time_to_recover_s": 1.5}}}
    assert clause.evaluate({"by_fault": by_fault})["ok"]
    assert not clause.evaluate({"by_fault": {}})["ok"]  # never injected: not measured, not ok


# --- the live monitor --------------------------------------------------------------------------


def test_a_cumulative_guard_trips_at_the_batch_that_crosses_it() -> None:
    switch = AbortSwitch()
    switch.arm(T0)
    hooks: list[str] = []
    switch.on_trip(lambda: hooks.append("halt"))
    monitor = GuardMonitor(["oversell_live > 0"], stock=10, switch=switch)
    monitor.observe(ops_to_batch(_oks(0, 10, 0.1)))  # exactly the stock: no oversell yet
    assert switch.abort is None and not switch.event.is_set()
    monitor.observe(ops_to_batch(_oks(10, 1, 0.2)))  # the 11th acknowledged purchase
    assert switch.event.is_set() and hooks == ["halt"]
    assert switch.abort is not None and switch.abort.by == "guard"
    assert switch.abort.guard == "oversell_live > 0"
    assert switch.abort.reason.startswith("aborted by guard 'oversell_live > 0' at t=")
    assert not switch.trip("interrupt")  # the first trip wins; hooks ran once
    assert hooks == ["halt"] and switch.abort.by == "guard"


def test_windowed_guards_slide_and_for_needs_the_condition_to_hold_that_long() -> None:
    switch = AbortSwitch()
    monitor = GuardMonitor(["error_rate_2s > 0.5 for 3s"], stock=1000, switch=switch)
    monitor.observe(ops_to_batch(_oks(0, 10, 0.5) + _errors(100, 30, 0.5)))
    assert monitor.check(T0 + 1 * S) is None  # holds (0.75) but not for 3 s yet
    assert monitor.last["error_rate_2s > 0.5 for 3s"] == pytest.approx(0.75)
    monitor.observe(ops_to_batch(_errors(200, 5, 2.5)))
    assert monitor.check(T0 + 3 * S) is None  # window (1 s, 3 s]: only errors; held 2 s
    assert monitor.check(T0 + 4 * S + 1) is not None  # held for 3 s: trips
    assert switch.abort is not None and switch.abort.guard == "error_rate_2s > 0.5 for 3s"

    rates = GuardMonitor(
        ["availability_5s < 0.5", "server_error_rate_5s > 0", "indeterminate_rate_5s > 0.5"],
        stock=1,
        switch=AbortSwitch(),
    )
    sold_out = [_op(300 + k, "fail", 0.5, status=409, code="sold_out") for k in range(3)]
    rates.observe(ops_to_batch(_oks(0, 2, 0.5) + _errors(100, 3, 0.5) + sold_out))
    assert rates.check(T0 + 1 * S) is None
    assert rates.last == {
        "availability_5s < 0.5": pytest.approx(5 / 8),  # a sold-out answer is service
        "server_error_rate_5s > 0": 0.0,
        "indeterminate_rate_5s > 0.5": pytest.approx(3 / 8),
    }

    quiet = GuardMonitor(["p99_1s_ms > 50", "error_rate_1s > 0.5"], stock=1, switch=AbortSwitch())
    quiet.observe(ops_to_batch(_errors(0, 20, 0.5)))
    # 10 s later the window is empty: a rate over no answers is not measured and does not hold.
    assert quiet.check(T0 + 10 * S) is None
    assert quiet.last == {"p99_1s_ms > 50": None, "error_rate_1s > 0.5": None}
    assert quiet.check(T0 + int(0.9 * S)) is not None  # 100 ms response time > 50 ms


def test_the_steady_state_check_fails_when_the_stack_does_not_answer(free_port: int) -> None:
    """GET /readyz to a loopback port nothing listens on: not steady, whatever the clauses say."""
    monitor = GuardMonitor([], stock=10, switch=AbortSwitch())
    monitor.observe(ops_to_batch(_oks(0, 10, 0.1)))
    check = SteadyStateCheck(
        ["success_rate > 0.5", "oversell == 0", "latency_ms.p99 < 50"],
        monitor,
        f"http://127.0.0.1:{free_port}/readyz",
        T0,
    )
    assert check() is False
    result = check.result
    assert result is not None and result["ok"] is False
    by_clause = {d.get("clause") or d["probe"]: d for d in result["details"]}
    assert by_clause["success_rate > 0.5"]["ok"] is True
    assert by_clause["latency_ms.p99 < 50"]["ok"] is False  # 100 ms responses
    assert "oversell == 0" not in by_clause  # needs Redis truth: not applicable before faults
    assert by_clause["GET /readyz"]["ok"] is False
    assert "latency_ms.p99 < 50" in result["reason"] and "faults not injected" in result["reason"]


def test_the_steady_state_check_judges_relative_clauses_on_the_runs_capacity() -> None:
    """`latency_ms.p99 < 2 * ideal.drain_ms` before the first fault: against the capacity the run
    probed (manifest ideal), and no verdict when it probed none (not a failure)."""
    monitor = GuardMonitor([], stock=10, switch=AbortSwitch())
    monitor.observe(ops_to_batch(_oks(0, 10, 0.1)))  # 100 ms answers
    clauses = ["latency_ms.p99 < 2 * ideal.drain_ms", "latency_ms.p99 < 1 * capacity.buy_p50_ms"]
    reference = {"ideal": {"drain_ms": 500.0}, "capacity": {"buy_p50_ms": 20.0}}
    check = SteadyStateCheck(clauses, monitor, None, T0, reference=reference)
    assert check() is False
    assert check.result is not None
    by_clause = {d["clause"]: d["ok"] for d in check.result["details"]}
    assert by_clause == {clauses[0]: True, clauses[1]: False}  # < 1,000 ms; not < 20 ms
    unprobed = SteadyStateCheck(clauses, monitor, None, T0, reference={"capacity": None})
    assert unprobed() is True
    assert unprobed.result is not None
    assert [d["ok"] for d in unprobed.result["details"]] == [None, None]


@pytest.fixture
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- end to end ------------------------------------------------------------------------------------


def run_watching(args: list[str], timeout_s: float = 240) -> tuple[int, str, str, set[int]]:
    """`flashlab <args>` in its own session; (exit code, stdout, stderr, every descendant seen)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashlab.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= descendants(proc.pid)
        time.sleep(0.1)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err, seen


def assert_no_process_left(seen: set[int]) -> None:
    poll(lambda: not any(alive(p) for p in seen), "every process of the run to be gone", 15)


NAIVE_GUARDED = """\
name: naive-guarded
seed: 3
stack: {platform: local, workers: 2, durability: none, prometheus: false}
product: {id: iphone, stock: 20, strategy: naive, settings: {naive_delay_ms: 20}}
scenario:
  shoppers: 3000
  model: open
  arrival: {kind: poisson, rate_per_s: 200}   # 15 s of arrivals: the guard stops it far earlier
  duration_s: 30
  request_timeout_s: 3
engine: {kind: process, workers: 2, connections: 64}
faults:
  - {fault: latency, at_s: 0, duration_s: 60, params: {ms: 20}}   # on from t0, still on at the abort
guards:
  - oversell_live > 0
hypothesis:
  - oversell == 0
  - lost_acknowledged == 0
"""


def test_a_guard_aborts_a_naive_run_at_its_first_oversell(tmp_path: Path) -> None:
    exp = tmp_path / "naive-guarded.yaml"
    exp.write_text(NAIVE_GUARDED)
    out = tmp_path / "run"
    code, stdout, stderr, seen = run_watching(["run", str(exp), "--out", str(out), "--json"])
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    assert len(seen) >= 5, seen  # redis, proxy, 2 api workers, nginx, engine workers
    assert_no_process_left(seen)

    summary = json.loads(stdout)
    aborted = summary["aborted"]
    assert aborted["by"] == "guard" and aborted["guard"] == "oversell_live > 0"
    assert summary["verdict"] == "fail"
    assert summary["verdict_reasons"][0] == aborted["reason"]
    assert aborted["reason"] == f"aborted by guard 'oversell_live > 0' at t={aborted['t_s']:.2f}s"
    assert summary["oversell"] > 0

    run = load_run(out)  # complete: every file, manifest written last
    assert run.manifest["complete"] is True and run.manifest["aborted"] == aborted
    assert 0 < summary["shoppers"] < 3000  # the load stopped early
    history = pq.read_table(out / "history.parquet").to_pandas()
    assert len(history) == summary["attempts"]
    # The latency fault (60 s) was active at the abort and was recovered right then: cut short,
    # no error, its toxic removed from the proxy.
    (fault,) = run.faults.to_dict("records")
    t0 = run.manifest["load_start_ns"]
    assert fault["fault"] == "latency" and pd.isna(fault["error"])
    assert fault["recover_ns"] >= t0 + aborted["t_s"] * 1e9 - 1e6
    assert fault["recover_ns"] - fault["inject_ns"] < 60 * 1e9
    assert json.loads(fault["observed"])["recover"]["toxics_left"] == []
    assert summary["steady_state"]["before"]["ok"] is True  # checked, then the fault went in
    assert summary["by_fault"]["latency"]["window"]["attempts"] > 0
    assert summary["phase"]["during_faults"]["attempts"] > 0
    assert 'id="aborted"' in (out / "report.html").read_text()


NOT_STEADY = """\
name: not-steady
seed: 5
stack: {platform: local, workers: 2, durability: none, prometheus: false}
product: {id: iphone, stock: 5, strategy: lua}
scenario:
  shoppers: 600
  model: open
  arrival: {kind: poisson, rate_per_s: 200}
  duration_s: 20
  request_timeout_s: 3
engine: {kind: inline, workers: 1, connections: 64}
faults:
  - {fault: redis-pause, at_s: 1.5, duration_s: 1.0}
hypothesis:
  - oversell == 0
  - success_rate > 0.5    # 5 units for ~300 shoppers by t=1.5 s: never steady
"""


def test_no_fault_is_injected_when_the_system_is_not_in_steady_state(tmp_path: Path) -> None:
    exp = tmp_path / "not-steady.yaml"
    exp.write_text(NOT_STEADY)
    out = tmp_path / "run"
    code, stdout, stderr, seen = run_watching(
        ["run", str(exp), "--out", str(out), "--json", "--no-report"]
    )
    assert code == 1, stderr[-3000:]
    assert_no_process_left(seen)
    summary = json.loads(stdout)
    before = summary["steady_state"]["before"]
    assert before["ok"] is False and "faults not injected" in before["reason"]
    assert "success_rate > 0.5" in before["reason"]
    assert before["reason"] in summary["verdict_reasons"]
    run = load_run(out)
    assert run.faults.empty and summary["recovery"] == [] and summary["by_fault"] == {}
    assert run.manifest["steady_state"]["before"] == before
