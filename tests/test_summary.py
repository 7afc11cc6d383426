"""summary.json: every hypothesis key present, JSON-safe, verdict from the hypothesis only, recovery metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flashlab.analysis.hypothesis import SUMMARY_KEYS
from flashlab.analysis.summary import json_safe
from flashlab.analysis.summary import summarize
from flashlab.core.rundir import FAULTS
from flashlab.core.rundir import load_run
from flashlab.testing.synthetic import Outage
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic


def _summary(tmp_path: Path, **spec: Any) -> dict[str, Any]:
    write_synthetic(tmp_path, SyntheticSpec(**spec))
    return summarize(load_run(tmp_path))


def _walk(value: Any) -> None:
    """Only JSON types, no NaN/inf anywhere."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            _walk(v)
    elif isinstance(value, list):
        for v in value:
            _walk(v)
    else:
        assert value is None or type(value) in (bool, int, float, str), type(value)
        if isinstance(value, float):
            assert math.isfinite(value)


def test_every_hypothesis_key_is_present_and_measured(tmp_path: Path) -> None:
    s = _summary(tmp_path)
    for key, subs in SUMMARY_KEYS.items():
        assert key in s, key
        for sub in subs:
            assert s[key][sub] is not None, f"{key}.{sub}"
        if not subs:
            assert s[key] is not None, key
    for key in ("verdict", "checks", "codes", "recovery", "reconciliation", "timeseries", "run_id"):
        assert key in s


def test_summary_is_json_safe_and_round_trips(tmp_path: Path) -> None:
    s = _summary(tmp_path, plant={"oversell": 2}, outage=Outage(0.2, 0.4))
    _walk(s)
    assert json.loads(json.dumps(s, allow_nan=False)) == s


def test_json_safe_converts_numpy_and_nan() -> None:
    import numpy as np

    out = json_safe({"a": np.int64(3), "b": [np.float64("nan"), float("inf")], "c": np.bool_(True)})
    assert out == {"a": 3, "b": [None, None], "c": True}
    assert type(out["a"]) is int


def test_clean_run_passes(tmp_path: Path) -> None:
    s = _summary(
        tmp_path, hypothesis=["oversell == 0", "lost_acknowledged == 0", "latency_ms.p99 < 1000"]
    )
    assert s["verdict"] == "pass"
    assert s["failed_checks"] == []
    assert [c["ok"] for c in s["hypothesis"]] == [True, True, True]
    assert s["sold"] == s["stock_initial"] - s["stock_remaining"]
    assert sum(s["codes"].values()) == s["attempts"]


def test_planted_oversell_fails_the_verdict_with_the_measured_count(tmp_path: Path) -> None:
    s = _summary(tmp_path, plant={"oversell": 3})
    assert s["verdict"] == "fail"
    clause = next(c for c in s["hypothesis"] if c["key"] == "oversell")
    assert clause == {
        "clause": "oversell == 0",
        "key": "oversell",
        "op": "==",
        "expected": 0.0,
        "measured": 3.0,
        "ok": False,
        "class": "safety",
        "status": "fail",
    }
    assert s["verdict_reasons"] == ["clause 'oversell == 0' failed: measured 3 (expected == 0)"]
    assert s["oversell"] == 3 and s["conservation_errors"] == 3
    assert set(s["failed_checks"]) == {"oversell", "conservation"}


def test_failed_check_outside_the_hypothesis_does_not_change_the_verdict(tmp_path: Path) -> None:
    s = _summary(tmp_path, plant={"oversell": 3}, hypothesis=["lost_acknowledged == 0"])
    assert s["verdict"] == "pass"
    assert "oversell" in s["failed_checks"]
    assert s["checks"]["oversell"]["ok"] is False


def test_unmeasurable_clause_fails(tmp_path: Path) -> None:
    # stock is never exhausted, so sellout_s is None and cannot satisfy the clause
    s = _summary(tmp_path, shoppers=50, stock=500, hypothesis=["sellout_s < 100"])
    assert s["sellout_s"] is None
    assert s["verdict"] == "fail"
    assert s["hypothesis"][0]["measured"] is None


def test_empty_hypothesis_passes(tmp_path: Path) -> None:
    assert _summary(tmp_path, plant={"lost_acknowledged": 1}, hypothesis=[])["verdict"] == "pass"


# --- recovery ----------------------------------------------------------------------------------

# 2,000 shoppers spread evenly over 10 s, nobody loses a race, stock never runs out: every
# attempt outside the outage is a 200, every attempt sent inside it a 503.
STEADY = {"shoppers": 2_000, "arrival_s": 10.0, "stock": 100_000, "busy_p": 0.0, "seed": 4}


@pytest.mark.parametrize("tail_s", [0.0, 0.5, 1.25])
def test_recovery_on_a_synthetic_outage(tmp_path: Path, tail_s: float) -> None:
    s = _summary(tmp_path, outage=Outage(start_s=4.0, end_s=6.0, tail_s=tail_s), **STEADY)
    (fault,) = s["recovery"]
    assert fault["fault"] == "redis-kill" and fault["target"] == "redis"
    assert fault["inject_s"] == pytest.approx(4.0) and fault["recover_s"] == pytest.approx(6.0)
    assert fault["window_availability"] == 0.0
    assert fault["window_attempts"] > 300  # ~200 arrivals/s over 2 s, plus retries
    assert fault["baseline_availability"] == 1.0 and fault["baseline_source"] == "measured"
    assert fault["recovery_s"] == pytest.approx(tail_s)
    # the first 200 is the first attempt sent after the tail, plus its service time
    assert tail_s <= fault["first_success_s"] < tail_s + 0.1
    assert s["availability"] < 1.0


def test_recovery_is_none_when_the_service_never_comes_back(tmp_path: Path) -> None:
    s = _summary(tmp_path, outage=Outage(start_s=4.0, end_s=5.0, tail_s=100.0), **STEADY)
    (fault,) = s["recovery"]
    assert fault["recovery_s"] is None and fault["first_success_s"] is None


def test_fault_without_recovery_time(tmp_path: Path) -> None:
    write_synthetic(tmp_path, SyntheticSpec(outage=Outage(start_s=4.0, end_s=6.0), **STEADY))
    table = pq.read_table(tmp_path / FAULTS)
    table = table.set_column(4, table.schema.field(4), pa.array([None], type=pa.int64()))
    pq.write_table(table, tmp_path / FAULTS)
    (fault,) = summarize(load_run(tmp_path))["recovery"]
    assert fault["recover_s"] is None and fault["recovery_s"] is None
    # the open window runs to the end of the load, which includes the good 6..10 s
    assert 0.0 < fault["window_availability"] < 1.0


def test_fault_at_load_start_assumes_a_perfect_baseline(tmp_path: Path) -> None:
    s = _summary(tmp_path, outage=Outage(start_s=0.0, end_s=1.0), **STEADY)
    (fault,) = s["recovery"]
    assert fault["baseline_source"] == "assumed" and fault["baseline_availability"] == 1.0
    assert fault["recovery_s"] == 0.0


def test_large_run_summarises(tmp_path: Path) -> None:
    # the size of the 10,000-shopper experiments; speed is measured in bench/, not asserted here
    s = _summary(tmp_path, shoppers=10_000, stock=1_000, busy_p=0.4, max_attempts=6)
    assert s["shoppers"] == 10_000 and s["sold"] == 1_000 and s["verdict"] == "pass"


def test_run_without_attempts_summarises_to_nones(tmp_path: Path) -> None:
    s = _summary(tmp_path, shoppers=0, stock=5)
    assert s["attempts"] == 0 and s["verdict"] == "pass"
    assert s["availability"] is None and s["latency_ms"]["p99"] is None
    assert s["fairness"]["rank_correlation"] is None
    json.dumps(s, allow_nan=False)


# --- load-generator health ----------------------------------------------------------------------


def test_generator_health_comes_from_the_manifest(tmp_path: Path) -> None:
    from flashlab.testing.synthetic import OVERLOADED
    from flashlab.testing.synthetic import Generator

    healthy = _summary(tmp_path / "ok", hypothesis=["generator_stalled_s < 0.5"])
    assert healthy["generator"] == {
        "lag_ms_p99": Generator().lag_ms_p99,
        "lag_ms_max": Generator().lag_ms_max,
        "stalled_s": 0.0,
        "cpu_pct_max": Generator().cpu_pct_max,
        "healthy": True,
    }
    assert healthy["verdict"] == "pass"
    bad = _summary(
        tmp_path / "bad",
        generator=OVERLOADED,
        hypothesis=["oversell == 0", "generator_stalled_s < 0.5", "generator_lag_ms_p99 < 50"],
    )
    assert bad["generator"]["healthy"] is False
    assert bad["generator_stalled_s"] == bad["generator"]["stalled_s"] == OVERLOADED.stalled_s
    assert bad["generator_lag_ms_p99"] == OVERLOADED.lag_ms_p99
    # The generator clauses are timing clauses: an unhealthy generator cannot decide them.
    assert bad["verdict"] == "inconclusive"
    assert [c["ok"] for c in bad["hypothesis"]] == [True, False, False]
    assert [c["status"] for c in bad["hypothesis"]] == ["pass", "inconclusive", "inconclusive"]
    assert bad["hypothesis"][1]["measured"] == OVERLOADED.stalled_s


@pytest.mark.parametrize(
    ("lag", "stalled", "healthy"),
    [(49.9, 0.49, True), (50.0, 0.0, False), (1.0, 0.5, False), (None, 0.0, None)],
)
def test_generator_health_thresholds(lag: Any, stalled: Any, healthy: Any) -> None:
    from flashlab.analysis.stats import load_generator_health

    engine = {"generator": {"lag_ms_p99": lag, "stalled_s": stalled, "cpu_pct_max": 90}}
    assert load_generator_health({"engine": engine})["healthy"] is healthy


def test_runs_without_generator_data_summarise_to_nones(tmp_path: Path) -> None:
    s = _summary(tmp_path, generator=None, hypothesis=["generator_stalled_s < 0.5"])
    assert s["generator"] == {
        "lag_ms_p99": None,
        "lag_ms_max": None,
        "stalled_s": None,
        "cpu_pct_max": None,
        "healthy": None,
    }
    assert s["generator_lag_ms_p99"] is None and s["generator_stalled_s"] is None
    assert s["verdict"] == "fail"  # an unmeasured clause does not hold
    assert load_run(tmp_path).manifest.get("engine", {}).get("generator") is None


def test_generator_clauses_parse() -> None:
    from flashlab.analysis.hypothesis import HypothesisError
    from flashlab.analysis.hypothesis import parse_clause

    clause = parse_clause("generator_stalled_s < 0.5")
    assert (clause.key, clause.op, clause.value) == ("generator_stalled_s", "<", 0.5)
    assert clause.evaluate({"generator_stalled_s": 0.1})["ok"]
    assert not clause.evaluate({"generator_stalled_s": 0.7})["ok"]
    assert parse_clause("generator_lag_ms_p99 < 50").evaluate({"generator_lag_ms_p99": 3.0})["ok"]
    with pytest.raises(HypothesisError, match="has no sub-key"):
        parse_clause("generator_stalled_s.max < 1")


def test_cli_result_table_flags_an_overloaded_generator() -> None:
    from flashlab.commands import display
    from flashlab.console import console

    def shown(generator: dict[str, Any] | None) -> str:
        with console.capture() as cap:
            display.print_summary({"verdict": "pass", "generator": generator})
        return " ".join(cap.get().replace("\u2502", " ").split())  # table borders out

    bad = {"lag_ms_p99": 180.0, "stalled_s": 2.4, "healthy": False}
    assert "load generator OVERLOADED (lag p99 180.0 ms, stalled 2.40 s)" in shown(bad)
    assert "load generator healthy" in shown({"lag_ms_p99": 1.0, "stalled_s": 0, "healthy": True})
    assert "load generator —" in shown(None)


# --- faults and phases in the hypothesis, aborted runs ------------------------------------------


def test_fault_and_phase_clauses_on_a_synthetic_outage(tmp_path: Path) -> None:
    hypothesis = [
        "recovery.redis-kill.time_to_recover_s <= 0.5",
        "window.redis-kill.availability > 0.2",  # every attempt in the window is a 503: fails
        "phase.before_faults.availability == 1",
        "phase.during_faults.availability < 0.01",
        "phase.after_faults.latency_ms.p99 < 1000",
    ]
    s = _summary(
        tmp_path, outage=Outage(start_s=4.0, end_s=6.0, tail_s=0.5), hypothesis=hypothesis, **STEADY
    )
    kill = s["by_fault"]["redis-kill"]
    assert kill["occurrences"] == 1
    assert kill["recovery"]["time_to_recover_s"] == pytest.approx(0.5)
    assert kill["window"]["availability"] == 0.0
    assert kill["window"]["attempts"] == s["recovery"][0]["window_attempts"]
    phase = s["phase"]
    # The three phases partition the attempts by send time, at inject (4 s) and recover (6 s).
    assert sum(p["attempts"] for p in phase.values()) == s["attempts"]
    assert phase["before_faults"]["duration_s"] == pytest.approx(4.0)
    assert phase["during_faults"]["duration_s"] == pytest.approx(2.0)
    assert phase["after_faults"]["availability"] < 1.0  # the 0.5 s tail is after recover
    ok = {c["clause"]: c["ok"] for c in s["hypothesis"]}
    assert ok == {
        hypothesis[0]: True,
        hypothesis[1]: False,
        hypothesis[2]: True,
        hypothesis[3]: True,
        hypothesis[4]: True,
    }
    assert s["verdict"] == "fail"
    assert s["verdict_reasons"] == [f"clause {hypothesis[1]!r} failed: measured 0 (expected > 0.2)"]
    assert s["aborted"] is None and s["steady_state"] == {"before": None, "after": {"ok": False}}


def test_without_faults_everything_is_before_faults(tmp_path: Path) -> None:
    s = _summary(tmp_path, hypothesis=["phase.during_faults.attempts > 0"], **STEADY)
    assert s["phase"]["before_faults"]["attempts"] == s["attempts"]
    assert s["phase"]["during_faults"]["attempts"] == 0 == s["phase"]["after_faults"]["attempts"]
    assert s["phase"]["after_faults"]["availability"] is None and s["by_fault"] == {}
    assert s["verdict"] == "fail"  # zero attempts during faults: the clause does not hold


def test_an_aborted_run_fails_with_the_abort_first_among_the_reasons(tmp_path: Path) -> None:
    import json

    write_synthetic(tmp_path, SyntheticSpec(**STEADY))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    aborted = {
        "by": "guard",
        "guard": "error_rate_5s > 0.5",
        "t_s": 2.5,
        "reason": "aborted by guard 'error_rate_5s > 0.5' at t=2.50s",
    }
    before = {"ok": False, "t_s": 1.0, "reason": "not in steady state", "details": []}
    manifest |= {"aborted": aborted, "steady_state": {"before": before}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    s = summarize(load_run(tmp_path))
    assert s["verdict"] == "fail" and s["aborted"] == aborted
    assert s["verdict_reasons"] == [aborted["reason"], "not in steady state"]
    assert s["steady_state"] == {"before": before, "after": {"ok": True}}
    assert list(s)[:4] == ["schema_version", "run_id", "verdict", "verdict_reasons"]

    from flashlab.analysis import plots

    fig = plots.timeline(load_run(tmp_path))
    for ax in fig.axes:  # every panel marks the moment of the abort
        assert any(list(line.get_xdata()) == [2.5, 2.5] for line in ax.get_lines())
