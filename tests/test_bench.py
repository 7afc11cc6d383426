"""The benchmark harness: every benchmark runs at `--size tiny` against real processes and appends a
well-formed results line and a PNG - to a temp results file, never the committed one.

Nothing here asserts on speed: tiny sizes are too small to measure anything, and a shared
2-core machine makes absolute numbers noise. The ratio/target *shape* is what is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flashlab.bench import bench_names
from flashlab.bench import get_bench
from flashlab.bench.ceiling import summarize_folded
from flashlab.bench.context import REPO_ROOT
from flashlab.bench.context import RESULTS_FULL
from flashlab.bench.context import BenchContext
from flashlab.bench.results import append_result
from flashlab.bench.results import target
from flashlab.cli import app

REQUIRED_KEYS = {
    "bench", "command", "git_revision", "machine", "started_at", "params", "raw", "ratios",
    "targets",
}  # fmt: skip
MACHINE_KEYS = {"cpus", "mem_gib", "kernel", "python"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_line(line: dict, name: str, plots: Path) -> None:
    assert set(line) >= REQUIRED_KEYS, f"{name}: missing {REQUIRED_KEYS - set(line)}"
    assert line["bench"] == name
    assert line["size"] == "tiny"
    assert set(line["machine"]) >= MACHINE_KEYS
    assert line["ratios"], f"{name}: no ratios"
    for key, t in line["targets"].items():
        assert set(t) == {"value", "target", "met"}, key
        assert t["met"] in (True, False, None), key
    plot = plots / f"{name}.png"
    assert plot.read_bytes()[:8] == PNG_MAGIC, f"{name}: plot is not a PNG"


@pytest.mark.timeout(900)
def test_every_benchmark_runs_tiny_and_appends_a_line(tmp_path: Path) -> None:
    results, plots = tmp_path / "results.jsonl", tmp_path / "plots"
    committed_before = RESULTS_FULL.read_bytes() if RESULTS_FULL.exists() else None
    ctx = BenchContext(size="tiny", results_path=results, plots_dir=plots, command="pytest")
    for name in bench_names():
        line = get_bench(name).run(ctx)
        append_result(results, line)
        _check_line(json.loads(results.read_text().splitlines()[-1]), name, plots)
    assert len(results.read_text().splitlines()) == len(bench_names())
    after = RESULTS_FULL.read_bytes() if RESULTS_FULL.exists() else None
    assert after == committed_before, "tiny runs must not touch bench/results.jsonl"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point (flashlab.cli:main), where user errors become one line and exit 2."""
    argv = [sys.executable, "-m", "flashlab.cli", *args]
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_cli_rejects_unknown_benchmark_and_size_in_one_line(tmp_path: Path) -> None:
    for args, flag in (
        (["nope", "--size", "tiny"], "NAME"),
        (["ceiling", "--size", "huge"], "--size"),
    ):
        proc = _cli("bench", *args, "--results", str(tmp_path / "r.jsonl"))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and flag in lines[0], proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_cli_runs_one_tiny_benchmark_as_json(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    res = CliRunner().invoke(
        app, ["bench", "ceiling", "--size", "tiny", "--json", "--results", str(results)]
    )
    assert res.exit_code == 0, res.output
    line = json.loads(results.read_text())
    assert line["bench"] == "ceiling" and set(line["ratios"]) >= {
        "lua",
        "lock",
        "optimistic",
        "naive",
    }
    assert (tmp_path / "plots" / "ceiling.png").exists()


def test_target_and_profile_summary_are_plain_arithmetic() -> None:
    assert target(0.7, ">=", 0.6)["met"] is True
    assert target(0.5, ">=", 0.6)["met"] is False
    assert target(None, "<=", 1.0)["met"] is None
    folded = "main;run (uvicorn/server.py:1);execute (redis/client.py:5) 30\nmain;idle (asyncio/base_events.py:2) 10\n"
    s = summarize_folded(folded)
    assert s["samples"] == 40
    assert s["buckets"]["redis client (redis-py/hiredis)"] == 0.75
    assert s["top_self"][0]["frame"] == "execute (redis/client.py:5)"


def test_stability_host_adjustment_removes_what_the_host_explains() -> None:
    """Trials whose p99 and throughput moved exactly with the host's speed: raw CVs are large,
    host-adjusted ones zero (pure arithmetic on recorded trials; no run, no clock)."""
    from flashlab.bench.stability import _cell

    def trial(slowdown: float) -> dict:
        return {
            "verdict": "pass", "p99_ms": 4000 * slowdown, "throughput_rps": 2000 / slowdown,
            "sold": 1000, "generator_healthy": True, "lag_ms_p99": 5.0,
            "isolation_applied": True, "startup_s": 0.1, "host_spread": 1.2,
            "stack_unit_us": 400 * slowdown,
        }  # fmt: skip

    cell = _cell([trial(x) for x in (1.0, 1.2, 1.5)])
    assert cell["p99_cv"] > 0.15 and cell["throughput_cv"] > 0.15
    assert cell["p99_cv_host_adjusted"] == 0.0 and cell["throughput_cv_host_adjusted"] == 0.0
    assert cell["stack_unit_us_cv"] == cell["p99_cv"]
    unmeasured = _cell([trial(1.0) | {"stack_unit_us": None}, trial(1.2) | {"stack_unit_us": None}])
    assert unmeasured["p99_cv_host_adjusted"] is None


def test_bench_drive_of_a_queue_product_speaks_the_queue_protocol(
    local_stack: Any, admin: Any
) -> None:
    """`run_engine(..., strategy="queue")`: the drive process joins and polls the waiting room
    (as `flashlab run` does, via flashlab.core.contract.needs_queue_protocol) before buying."""
    from flashlab.bench.engine_runs import run_engine
    from flashlab.core.contract import ResetRequest
    from flashlab.core.contract import Strategy
    from flashlab.simulator.scenario import Scenario
    from flashlab.simulator.scenario import Spike

    admin.reset(ResetRequest(product_id="bench-queue", stock=5, strategy=Strategy.queue))
    scenario = Scenario(shoppers=20, arrival=Spike(window_s=0.2), duration_s=30)
    run = run_engine(
        "inline",
        base_url=local_stack.base_url,
        product_id="bench-queue",
        scenario=scenario,
        seed=5,
        workers=1,
        connections=8,
        run_id="bench-queue",
        timeout_s=120,
        strategy="queue",
    )
    assert run.result["progress"]["queue_polls"] >= 20  # every shopper joined the queue
    h = run.history
    assert int(h["type"].eq("ok").sum()) == 5
    assert "not_admitted" not in set(h["code"].dropna())


def test_tree_monitor_samples_a_child_until_stopped(tmp_path: Path) -> None:
    """The process-tree monitor (a PeriodicThread): samples a real child process, counts its CPU
    and RSS, and stops its thread; the child is ours and reaped here."""
    import threading

    from support import poll

    from flashlab.bench.measured import TreeMonitor

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        monitor = TreeMonitor(child.pid).start()
        poll(lambda: len(monitor.samples) >= 3, "three samples", timeout_s=20)
        monitor.stop()
        count = len(monitor.samples)
        assert not any(t.name == "bench-tree-monitor" for t in threading.enumerate())
        assert len(monitor.samples) == count
        assert monitor.peak_rss > 0 and monitor.cpu_total >= 0
    finally:
        child.kill()
        child.wait(timeout=10)
