"""The host CPU-speed probe (flashlab.lab.hostspeed) and the judge's rule for an unsteady host:
timing clauses near their threshold become inconclusive, far ones and safety ones still decide."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support import poll

from flashlab.analysis.hypothesis import HOST_SPREAD_STEADY
from flashlab.analysis.hypothesis import near_threshold_on_unsteady_host
from flashlab.analysis.summary import summarize
from flashlab.core.isolation import available_cpus
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import load_run
from flashlab.lab.hostspeed import MIN_SAMPLES
from flashlab.lab.hostspeed import SAMPLE_EVERY_S
from flashlab.lab.hostspeed import HostSpeedProbe
from flashlab.lab.hostspeed import summarize as stats
from flashlab.system import procs
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic


def _side(spread: float | None, cpus: list[int] | None = None) -> dict[str, Any]:
    return {
        "cpus": cpus,
        "samples": 25,
        "median_us": 400.0,
        "p10_us": 380.0,
        "p90_us": 380.0 * (spread or 1),
        "spread": spread,
    }


def _summary(path: Path, host_speed: dict[str, Any] | None, hypothesis: list[str]) -> dict:
    write_synthetic(path, SyntheticSpec(hypothesis=hypothesis))
    manifest = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps(manifest | {"host_speed": host_speed}))
    return summarize(load_run(path))


def _timing(measured: float, expected: float, op: str = "<") -> dict[str, Any]:
    return {"clause": f"k {op} {expected:g}", "key": "latency_ms.p99", "op": op, "expected": expected,
            "measured": measured, "ok": measured < expected, "class": "timing",
            "status": "pass" if measured < expected else "fail"}  # fmt: skip


@pytest.mark.parametrize(
    ("measured", "spread", "status"),
    [
        # spread 1.5: the band is 3000 / 1.5 = 2000 .. 3000 * 1.5 = 4500
        (2900.0, 1.5, "inconclusive"),  # could have gone either way
        (3500.0, 1.5, "inconclusive"),
        (1900.0, 1.5, "pass"),  # far below even a faster host's threshold: judged
        (4600.0, 1.5, "fail"),  # far above: a fail, whatever the host did
        (3500.0, 1.2, "inconclusive"),  # band 2500 .. 3600
        (3700.0, 1.2, "fail"),
        (3500.0, HOST_SPREAD_STEADY, "fail"),  # a steady host: judged as measured
        (3500.0, None, "fail"),  # not measured (older runs): judged as measured
    ],
)
def test_near_threshold_rule(measured: float, spread: float | None, status: str) -> None:
    [result] = near_threshold_on_unsteady_host([_timing(measured, 3000.0)], spread, "noisy")
    assert result["status"] == status
    if status == "inconclusive":
        assert result["reason"].startswith("noisy; measured") and "within x" in result["reason"]


def test_safety_clauses_ignore_the_host() -> None:
    safety = _timing(1.0, 0.5) | {"class": "safety", "key": "oversell"}
    assert near_threshold_on_unsteady_host([safety], 3.0, "noisy") == [safety]


def test_summary_records_host_speed_and_the_verdict_follows(tmp_path: Path) -> None:
    # The synthetic run's p99 is a few hundred ms; a clause at 1.2x of it sits inside the band of
    # a 1.5x spread.
    base = _summary(tmp_path / "base", None, ["oversell == 0"])
    p99 = base["latency_ms"]["p99"]
    clause = f"latency_ms.p99 < {p99 * 1.2:.3f}"
    noisy = _summary(
        tmp_path / "noisy",
        {"stack": _side(1.5, [0]), "load": _side(1.05, [1])},
        ["oversell == 0", clause],
    )
    assert noisy["host_speed"]["stack"]["spread"] == 1.5
    assert noisy["verdict"] == "inconclusive"
    assert "host CPU speed unsteady during the load (stack CPUs 0" in noisy["verdict_reasons"][0]
    steady = _summary(tmp_path / "steady", {"host": _side(1.02)}, ["oversell == 0", clause])
    assert steady["verdict"] == "pass" and steady["host_speed"]["host"]["cpus"] is None
    assert base["host_speed"] is None


def test_stats_need_enough_samples() -> None:
    assert stats([400_000] * (MIN_SAMPLES - 1), [0])["spread"] is None
    out = stats([100_000] * 5 + [200_000] * 5, None)
    assert out["samples"] == 10 and out["median_us"] == 150.0 and out["spread"] == 2.0


def test_probe_runs_pinned_and_is_reaped() -> None:
    cpus = available_cpus()
    probe = HostSpeedProbe({"stack": cpus[:1], "load": cpus[-1:]}).start()
    pids = list(probe._pids.values())
    start = time.time_ns()
    assert all(procs.is_alive(pid) for pid in pids)

    def enough() -> bool:
        logs = [probe._dir / f"{side}.log" for side in ("stack", "load")]
        return all(log.exists() and log.read_text().count("\n") > MIN_SAMPLES for log in logs)

    poll(enough, what="probe samples", timeout_s=SAMPLE_EVERY_S * MIN_SAMPLES * 20)
    record = probe.stop(start, time.time_ns())
    assert not any(procs.is_alive(pid) for pid in pids)
    for side, expected_cpus in (("stack", cpus[:1]), ("load", cpus[-1:])):
        rec = record[side]
        assert rec["cpus"] == expected_cpus
        assert rec["samples"] >= MIN_SAMPLES
        assert rec["p10_us"] <= rec["median_us"] <= rec["p90_us"] and rec["spread"] >= 1.0
    assert probe.stop(start, time.time_ns()) == {}  # idempotent: the run's cleanup calls it again
