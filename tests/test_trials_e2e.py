"""Repeated trials, `compare` and the inconclusive exit code end to end: real stacks, the real CLI.

Kept small (150 shoppers, 15 units, 3 trials): a few seconds per trial on the inline engine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from support import assert_one_line_error
from support import run_flashlab

from flashlab.core.rundir import load_run

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "experiments" / "smoke.yaml"
SMALL = ("--shoppers", "150", "--stock", "15")


def flashlab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_flashlab(*args, timeout=timeout)


@pytest.fixture(scope="module")
def lua_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trials") / "lua-x3"
    proc = flashlab("run", str(SMOKE), *SMALL, "--repeat", "3", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["set_dir"] == str(out)
    return out


@pytest.fixture(scope="module")
def lock_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trials") / "lock-x3"
    proc = flashlab(
        "run", str(SMOKE), *SMALL, "--strategy", "lock", "--repeat", "3",
        "--out", str(out), "--json", "--no-report",
    )  # fmt: skip
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]
    return out


def test_repeat_3_writes_a_complete_trial_set_on_one_stack(lua_set: Path) -> None:
    manifest = json.loads((lua_set / "trialset.json").read_text())
    assert manifest["complete"] is True and manifest["repeat"] == 3
    assert manifest["trials"] == ["trial-01", "trial-02", "trial-03"]
    assert manifest["seeds"] == [7, 8, 9]  # smoke.yaml's seed 7, then +1, +2
    runs = [load_run(lua_set / name) for name in manifest["trials"]]  # each complete
    assert [r.manifest["experiment"]["seed"] for r in runs] == [7, 8, 9]
    assert [r.manifest["trial"]["index"] for r in runs] == [1, 2, 3]
    # One stack for every trial: the same component processes served all three.
    pids = [{c["name"]: c["pid"] for c in r.manifest["stack"]["components"]} for r in runs]
    assert pids[0] == pids[1] == pids[2]
    # The product was reset between trials: each sold exactly its stock.
    assert [len(r.truth.orders) for r in runs] == [15, 15, 15]
    # Derived seeds: the trials' shoppers differ.
    first = [set(r.history.query("attempt == 1")["user_id"]) for r in runs]
    assert first[0] != first[1] and first[1] != first[2]


def test_trial_set_files_agree_with_the_trials(lua_set: Path) -> None:
    result = json.loads((lua_set / "trials.json").read_text())
    frame = pq.read_table(lua_set / "trials.parquet").to_pandas()
    assert len(frame) == 3 and list(frame["verdict"]) == ["pass"] * 3
    summaries = [json.loads((lua_set / n / "summary.json").read_text()) for n in frame["name"]]
    assert list(frame["p99"]) == [s["latency_ms"]["p99"] for s in summaries]
    p99 = result["metrics"]["p99"]
    assert p99["values"] == list(frame["p99"])
    assert p99["median"] == pd.Series(p99["values"]).median()
    assert p99["ci_low"] <= p99["median"] <= p99["ci_high"]
    assert result["verdict"] == "pass"
    assert result["intervals"]["confidence"] == 0.95
    html = (lua_set / "trials.html").read_text()
    assert 'href="trial-01/report.html"' in html and "verdict-pass" in html


def test_compare_two_strategies_on_one_workload(
    lua_set: Path, lock_set: Path, tmp_path: Path
) -> None:
    page = tmp_path / "compare.html"
    proc = flashlab("compare", str(lua_set), str(lock_set), "--json", "--html", str(page))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["a"]["kind"] == data["b"]["kind"] == "trial-set"
    assert "strategy: lua vs lock" in data["differences"]
    rows = {r["metric"]: r for r in data["rows"]}
    assert rows["oversell"]["outcome"] == "same"  # neither oversells
    # Lua never answers 409 busy; the lock makes losers of the race retry: worse on conflicts.
    assert rows["conflict_rate"]["a"] == 0
    assert rows["conflict_rate"]["outcome"] == "worse", rows["conflict_rate"]
    assert rows["conflict_rate"]["diff_ci_low"] > 0
    assert "<table>" in page.read_text()
    gate = flashlab("compare", str(lua_set), str(lock_set), "--fail-if-worse", "conflict_rate")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "regression" in gate.stdout


def test_compare_refuses_a_set_with_a_missing_trial(lua_set: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(lua_set, broken)
    shutil.rmtree(broken / "trial-02")
    assert_one_line_error(flashlab("compare", str(lua_set), str(broken)), "trial-02 is missing")


# --- a deliberately starved generator: exit 3 -----------------------------------------------------

# The generator of the inline engine is an event loop in the flashlab process itself. During the
# load (and only then: the stack, judging and report stay fast) a thread sorts a list of a million
# floats again and again; a list sort is one C call that holds the GIL throughout (hundreds of ms
# per sort on any machine; slower, never faster, on a busy one), so the loop's lag sampler wakes
# that late. The starvation is deliberate and in the generator's own process; the stack and the
# rest of the run are real.
STARVE = """
import random, sys, threading
from flashlab.simulator.engines import inline

RNG = random.Random(0)
# Distinct values: each sort holds the GIL ~0.3 s. (One Random(0) per value made them all equal,
# a 20 ms sort: the starvation only showed while full GC collections stalled the loop as well.)
DATA = [RNG.random() for _ in range(1_000_000)]
real_run = inline.InlineEngine._run


def starved_run(self, plan, collector, on_start):
    stop = threading.Event()

    def hog():
        while not stop.is_set():
            sorted(DATA)

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    try:
        return real_run(self, plan, collector, on_start)
    finally:
        stop.set()
        thread.join()


inline.InlineEngine._run = starved_run
from flashlab.cli import main

sys.argv = ["flashlab", *sys.argv[1:]]
main()
"""


def test_starved_generator_gives_exit_3_not_pass_or_fail(tmp_path: Path) -> None:
    exp = tmp_path / "starved.yaml"
    exp.write_text(
        "name: starved\nseed: 3\nstack: {workers: 1, prometheus: false}\n"
        "product: {id: starved, stock: 10, strategy: lua}\n"
        "scenario: {shoppers: 100, arrival: {kind: spike, window_s: 0.5}, duration_s: 60,"
        " request_timeout_s: 30}\n"
        "engine: {kind: inline, connections: 32}\n"
        "hypothesis: ['oversell == 0', 'lost_acknowledged == 0', 'latency_ms.p99 < 60000']\n"
    )
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", STARVE, "run", str(exp), "--out", str(out), "--json", "--no-report"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["verdict"] == "inconclusive"
    assert summary["generator"]["healthy"] is False
    assert [c["status"] for c in summary["hypothesis"]] == ["pass", "pass", "inconclusive"]
    assert "load generator unhealthy" in summary["verdict_reasons"][0]
    assert json.loads((out / "summary.json").read_text())["verdict"] == "inconclusive"
    # `flashlab check` re-judges the saved run the same way, with the same exit code.
    assert flashlab("check", str(out), "--no-write").returncode == 3


def test_matrix_repeat_gives_intervals_per_cell(tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    proc = flashlab(
        "matrix", "--base", str(SMOKE), "--strategies", "lua", "--faults", "none",
        "--durability", "none", "--repeat", "2", "--shoppers", "100", "--stock", "10",
        "--out", str(out), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (cell,) = json.loads(proc.stdout)
    assert cell["repeat"] == 2 and cell["verdict"] == "pass"
    assert cell["p99_ci_low"] <= cell["p99_ms"] <= cell["p99_ci_high"]
    trials = json.loads((out / cell["run_dir"] / "trials.json").read_text())
    assert trials["metrics"]["p99"]["median"] == cell["p99_ms"]
    assert f'href="{cell["run_dir"]}/trials.html"' in (out / "matrix.html").read_text()
