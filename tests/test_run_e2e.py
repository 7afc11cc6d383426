"""`flashlab run` end to end on the real local stack: run directories, verdicts, exit codes, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import alive
from support import descendants
from support import poll
from support import run_flashlab

from flashlab.core.rundir import load_run

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "experiments" / "smoke.yaml"


def flashlab(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return run_flashlab(*args, timeout=timeout)


def test_smoke_run_passes_and_its_directory_is_consistent(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    proc = flashlab("run", str(SMOKE), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["verdict"] == "pass"
    for name in (
        "manifest.json",
        "history.parquet",
        "faults.parquet",
        "truth.json",
        "summary.json",
        "report.html",
    ):
        assert (out / name).exists(), name
    run = load_run(out)  # refuses incomplete runs
    assert run.manifest["complete"] is True
    history = pq.read_table(out / "history.parquet").to_pandas()
    truth = json.loads((out / "truth.json").read_text())
    # The summary is consistent with the raw evidence it was computed from.
    assert summary["attempts"] == len(history)
    assert summary["shoppers"] == history["shopper"].nunique() == 300
    assert summary["sold"] == len(truth["orders"]) == 30
    acked = set(history.loc[history["type"] == "ok", "order_id"])
    assert acked == {o["order_id"] for o in truth["orders"]}
    assert (
        summary["oversell"] == summary["lost_acknowledged"] == summary["duplicate_purchases"] == 0
    )
    # `flashlab check` re-judges the saved run the same way.
    again = flashlab("check", str(out), "--json", "--no-write")
    assert again.returncode == 0
    assert json.loads(again.stdout)["sold"] == summary["sold"]


def test_same_seed_same_shoppers_across_runs(tmp_path: Path) -> None:
    frames = []
    for name in ("a", "b"):
        proc = flashlab("run", str(SMOKE), "--out", str(tmp_path / name), "--json", "--no-report")
        assert proc.returncode == 0, proc.stderr[-2000:]
        frames.append(pq.read_table(tmp_path / name / "history.parquet").to_pandas())
    first = frames[0].query("attempt == 1").sort_values("shopper")
    second = frames[1].query("attempt == 1").sort_values("shopper")
    assert list(first["user_id"]) == list(second["user_id"])
    assert list(first["profile"]) == list(second["profile"])
    offsets = [(f["intended_ns"] - f["intended_ns"].min()).tolist() for f in (first, second)]
    assert offsets[0] == offsets[1]


def test_naive_oversells_and_the_verdict_is_exit_1(tmp_path: Path) -> None:
    out = tmp_path / "naive"
    proc = flashlab(
        "run",
        str(ROOT / "experiments" / "seed-phase1-naive.yaml"),
        "--shoppers",
        "1500",
        "--stock",
        "100",
        "--engine",
        "process",
        "--out",
        str(out),
        "--json",
        "--no-report",
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["verdict"] == "fail"
    assert summary["oversell"] > 0
    failing = [c["clause"] for c in summary["hypothesis"] if not c["ok"]]
    assert "oversell == 0" in failing


SLOW = (
    # A long, gentle load so the interrupt lands mid-run; bounded by its duration cap anyway.
    "name: slow\nproduct: {stock: 100000, strategy: lua}\nstack: {prometheus: false}\n"
    "scenario: {shoppers: 20000, arrival: {kind: poisson, rate_per_s: 200}, duration_s: 90}\n"
    "engine: {kind: process, workers: 2, connections: 32}\n"
)


def _start_slow_run(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path, set[int]]:
    """`flashlab run` of SLOW in its own session, returned once its load and workers are up.
    stderr goes to a file, so a test can wait for a line without blocking on a pipe."""
    out = tmp_path / "interrupted"
    exp = tmp_path / "slow.yaml"
    exp.write_text(SLOW)
    err = tmp_path / "stderr.txt"
    with err.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flashlab.cli", "run", str(exp), "--out", str(out), "--json"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            start_new_session=True,
        )
    seen: set[int] = set()
    history_started = out / "history.parquet.partial"

    def loading() -> bool:
        # The writer exists before the engine starts; answers in it mean the load is running
        # (a Parquet file is its 4-byte magic until the first row group is written).
        seen.update(descendants(proc.pid))
        return history_started.exists() and history_started.stat().st_size > 4

    poll(loading, "the run's first answers", 120)
    for _ in range(10):  # let the engine's workers appear, collecting every descendant PID
        seen |= descendants(proc.pid)
        time.sleep(0.2)
    assert len(seen) >= 4, seen  # redis, 2 api workers, nginx at least
    return proc, out, err, seen


def _assert_all_gone(seen: set[int]) -> None:
    poll(lambda: not any(alive(p) for p in seen), "every process of the run to be gone", 15)


def test_ctrl_c_aborts_like_a_guard_and_leaves_a_complete_failed_run(tmp_path: Path) -> None:
    """First Ctrl-C during the load: the load stops, the run directory is complete, verdict fail."""
    proc, out, err, seen = _start_slow_run(tmp_path)
    os.kill(proc.pid, signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    stderr = err.read_text()
    assert proc.returncode == 1, stderr[-2000:]
    assert "Traceback" not in stderr and "Ctrl-C again to stop hard" in stderr
    _assert_all_gone(seen)
    summary = json.loads(stdout)
    assert summary["verdict"] == "fail"
    assert summary["aborted"]["by"] == "interrupt" and summary["aborted"]["guard"] is None
    assert summary["verdict_reasons"] == [summary["aborted"]["reason"]]
    assert summary["aborted"]["reason"].startswith("aborted by interrupt (Ctrl-C) at t=")
    run = load_run(out)  # complete
    assert run.manifest["complete"] is True and run.manifest["aborted"] == summary["aborted"]
    assert 0 < summary["shoppers"] < 20_000  # stopped long before the 100 s of arrivals
    assert (out / "report.html").exists()


def test_second_ctrl_c_stops_hard_and_leaves_the_run_incomplete(tmp_path: Path) -> None:
    proc, out, err, seen = _start_slow_run(tmp_path)
    os.kill(proc.pid, signal.SIGINT)
    # Signals do not queue: wait until the first one was handled before sending the second.
    poll(lambda: "Ctrl-C again" in err.read_text(), "the first Ctrl-C to be handled", 30)
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    stderr = err.read_text()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    _assert_all_gone(seen)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert not (out / "summary.json").exists()
    with pytest.raises(Exception, match="incomplete"):
        load_run(out)
