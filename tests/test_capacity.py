"""Relative timing clauses (`latency_ms.p99 < 1.5 * ideal.drain_ms`): the grammar and its refusals,
judging against the capacity a run measured, trial sets on the ratio, and compare's ratio rows.

Synthetic runs (flashlab.testing.synthetic) carry a made-up capacity record; the real probe is
tested on a real stack in tests/test_capacity_e2e.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import run_flashlab

from flashlab.analysis.capacity import ideal
from flashlab.analysis.capacity import unit_of
from flashlab.analysis.compare import compare
from flashlab.analysis.hypothesis import HypothesisError
from flashlab.analysis.hypothesis import bound_text
from flashlab.analysis.hypothesis import parse_clause
from flashlab.analysis.hypothesis import sides
from flashlab.analysis.summary import summarize
from flashlab.analysis.trials import load_set
from flashlab.analysis.trials import summarize_set
from flashlab.core.rundir import load_run
from flashlab.lab.capacity import probe_connections
from flashlab.lab.experiment import KNEE_CONNECTIONS_PER_API_WORKER
from flashlab.lab.experiment import ExperimentError
from flashlab.lab.experiment import parse_experiment
from flashlab.testing.synthetic import OVERLOADED
from flashlab.testing.synthetic import Capacity
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic
from flashlab.testing.synthetic import write_synthetic_set

# --- the grammar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "factor", "ref"),
    [
        ("latency_ms.p99 < 1.5 * ideal.drain_ms", "latency_ms.p99", 1.5, "ideal.drain_ms"),
        ("throughput_rps > 0.7 * capacity.buy_rps", "throughput_rps", 0.7, "capacity.buy_rps"),
        ("capacity.buy_rps > 0.5*capacity.gateway_rps", "capacity.buy_rps", 0.5, "capacity.gateway_rps"),
        ("sellout_s < 2 × ideal.sellout_s", "sellout_s", 2.0, "ideal.sellout_s"),
        ("phase.before_faults.latency_ms.p99 < 3 * ideal.drain_ms",
         "phase.before_faults.latency_ms.p99", 3.0, "ideal.drain_ms"),
    ],
)  # fmt: skip
def test_relative_clauses_parse(text: str, key: str, factor: float, ref: str) -> None:
    clause = parse_clause(text)
    assert (clause.key, clause.value, clause.ref) == (key, factor, ref)
    assert clause.needs_capacity


def test_absolute_clauses_need_no_capacity_unless_they_name_it() -> None:
    assert not parse_clause("latency_ms.p99 < 800").needs_capacity
    assert parse_clause("capacity.buy_rps > 100").needs_capacity
    assert parse_clause("ideal.drain_s < 10").ref is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency_ms.p99 < 1.5 * ideal.drain", r"not a capacity key \(did you mean 'ideal.drain_ms'\?\)"),
        ("throughput_rps > 0.7 * capacity.buy", r"did you mean 'capacity.buy_rps'\?"),
        ("latency_ms.p99 < 0 * ideal.drain_ms", r"factor 0 .* must be > 0"),
        ("latency_ms.p99 < -2 * ideal.drain_ms", r"factor -2 .* must be > 0"),
        ("oversell == 2 * capacity.buy_rps", r"'oversell' .* has no capacity counterpart"),
        ("conflict_rate < 1 * ideal.drain_s", r"'conflict_rate' .* has no capacity counterpart"),
        ("generator_stalled_s < 1 * ideal.drain_s", r"has no capacity counterpart"),
        ("latency_ms.p99 < 2 * capacity.buy_rps",
         r"in ms but 'capacity.buy_rps' in req/s.*did you mean 'capacity.buy_p50_ms'\?"),
        ("capacity.buy_rpz > 3", r"did you mean 'capacity.buy_rps'\?"),
    ],
)  # fmt: skip
def test_bad_relative_clauses_are_refused_with_a_hint(text: str, message: str) -> None:
    with pytest.raises(HypothesisError, match=message):
        parse_clause(text)


def test_units_of_clause_keys() -> None:
    assert unit_of("latency_ms.p99") == unit_of("phase.after_faults.latency_ms.p50") == "ms"
    assert unit_of("throughput_rps") == unit_of("capacity.gateway_rps") == "rps"
    assert unit_of("sellout_s") == unit_of("recovery.redis-kill.time_to_recover_s") == "s"
    assert unit_of("oversell") is None and unit_of("generator_lag_ms_p99") is None


# --- experiment files: capacity: off and what needs it ---------------------------------------------


def _experiment(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "hypothesis": ["oversell == 0"], **fields}


def test_capacity_off_with_a_clause_that_needs_it_is_refused_at_load_time() -> None:
    for clause in ("latency_ms.p99 < 1.5 * ideal.drain_ms", "capacity.buy_rps > 10"):
        data = _experiment(capacity=False, hypothesis=[clause])  # YAML reads `off` as false
        with pytest.raises(ExperimentError, match=r"needs the capacity probe.*capacity: off"):
            parse_experiment(data, "x.yaml")


def test_capacity_field_forms() -> None:
    off = parse_experiment(yaml.safe_load("name: x\ncapacity: off\n"))
    assert off.capacity == "off" and off.capacity_probe is None
    assert off.model_dump(mode="json")["capacity"] == "off"
    default = parse_experiment(_experiment())
    assert default.capacity_probe is not None and default.capacity_probe.probe_s == 1.5
    tuned = parse_experiment(_experiment(capacity={"probe_s": 3, "wrk": False}))
    assert tuned.capacity_probe is not None and not tuned.capacity_probe.wrk
    with pytest.raises(ExperimentError, match=r"capacity: probe_s: .*greater than or equal to 0.5"):
        parse_experiment(_experiment(capacity={"probe_s": 0.1}), "x.yaml")
    with pytest.raises(ExperimentError, match=r"capacity: expected off or a mapping"):
        parse_experiment(_experiment(capacity=True), "x.yaml")  # YAML's `on`


@pytest.mark.parametrize(
    ("engine", "stack_workers", "per_worker"),
    [
        ({"kind": "inline"}, 2, 2 * KNEE_CONNECTIONS_PER_API_WORKER),  # default: auto
        ({"kind": "inline", "connections": "auto"}, 4, 4 * KNEE_CONNECTIONS_PER_API_WORKER),
        ({"kind": "ray", "workers": 3}, 2, -(-2 * KNEE_CONNECTIONS_PER_API_WORKER // 3)),
        ({"kind": "process", "workers": 2, "connections": 7}, 2, 7),  # a number is kept
    ],
)  # fmt: skip
def test_auto_connections_cap_the_generator_at_the_stacks_knee(
    engine: dict[str, Any], stack_workers: int, per_worker: int
) -> None:
    exp = parse_experiment(_experiment(engine=engine, stack={"workers": stack_workers}))
    assert exp.connections_per_worker() == per_worker
    # the probe measures at the connection count the load will use, over all generator workers
    generators = 1 if exp.engine.kind == "inline" else exp.engine.workers
    assert probe_connections(exp) == per_worker * generators


@pytest.mark.parametrize("bad", ["many", 0, 2.5, 100_001, True])
def test_bad_connections_are_refused_in_one_line(bad: Any) -> None:
    with pytest.raises(ExperimentError, match=r"engine.connections: must be a whole number"):
        parse_experiment(_experiment(engine={"connections": bad}), "x.yaml")


def test_validate_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nhypothesis:\n  - latency_ms.p99 < 1.5 * ideal.drain\n")
    proc = run_flashlab("validate", str(path), timeout=60)
    assert proc.returncode == 2
    assert "did you mean 'ideal.drain_ms'?" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# --- judging one run --------------------------------------------------------------------------------


def _summary(tmp_path: Path, *clauses: str, **spec: Any) -> dict[str, Any]:
    write_synthetic(tmp_path, SyntheticSpec(hypothesis=list(clauses), **spec))
    return summarize(load_run(tmp_path))


def _clause(summary: dict[str, Any], text: str) -> dict[str, Any]:
    return next(c for c in summary["hypothesis"] if c["clause"] == text)


def test_summary_has_capacity_ideal_and_relative(tmp_path: Path) -> None:
    s = _summary(tmp_path, "oversell == 0")
    assert s["capacity"]["buy_rps"] == 2000.0 and s["capacity"]["gateway_rps"] == 4000.0
    # ideal: the experiment's 300 shoppers and 100 units at 2,000 purchases/s
    assert s["ideal"] == {"drain_s": 0.15, "drain_ms": 150.0, "sellout_s": 0.05}
    assert s["relative"]["p99_over_drain"] == pytest.approx(
        s["latency_ms"]["p99"] / 150.0, rel=1e-3
    )
    assert s["relative"]["throughput_over_buy"] == pytest.approx(
        s["throughput_rps"] / 2000.0, rel=1e-3
    )


def test_a_relative_clause_is_judged_against_this_runs_capacity(tmp_path: Path) -> None:
    loose, tight = "latency_ms.p99 < 10 * ideal.drain_ms", "latency_ms.p99 < 0.001 * ideal.drain_ms"
    s = _summary(tmp_path, loose, tight, "throughput_rps > 0.01 * capacity.buy_rps")
    p99 = s["latency_ms"]["p99"]
    ok = _clause(s, loose)
    assert ok["status"] == "pass" and ok["expected"] == pytest.approx(1500.0)
    assert (
        ok["ref_value"] == 150.0 and ok["factor"] == 10 and ok["ratio"] == pytest.approx(p99 / 150)
    )
    bad = _clause(s, tight)
    assert bad["status"] == "fail" and bad["expected"] == pytest.approx(0.15)
    assert s["verdict"] == "fail"
    reason = next(r for r in s["verdict_reasons"] if tight in r)
    assert "× ideal.drain_ms 150 ms = 0.1 ms" in reason and "does not hold" in reason
    assert _clause(s, "throughput_rps > 0.01 * capacity.buy_rps")["status"] == "pass"


def test_the_same_sale_on_a_slower_machine_moves_the_bound(tmp_path: Path) -> None:
    """Bound 2 x drain: a machine with a tenth of the capacity has ten times the drain time."""
    clause = "latency_ms.p99 < 2 * ideal.drain_ms"
    fast = _summary(tmp_path / "fast", clause)
    slow = _summary(tmp_path / "slow", clause, capacity=Capacity(buy_rps=200.0))
    assert _clause(slow, clause)["expected"] == pytest.approx(
        10 * _clause(fast, clause)["expected"]
    )


def test_without_capacity_a_clause_that_needs_it_is_inconclusive(tmp_path: Path) -> None:
    clauses = ("latency_ms.p99 < 1.5 * ideal.drain_ms", "capacity.wrk_buy_rps > 1", "oversell == 0")
    s = _summary(tmp_path, *clauses, capacity=None)
    relative, wrk, safety = (_clause(s, c) for c in clauses)
    assert relative["status"] == wrk["status"] == "inconclusive"
    assert relative["expected"] is None and "not recorded" in relative["reason"]
    assert "capacity.wrk_buy_rps not measured" in wrk["reason"]
    assert safety["status"] == "pass" and s["verdict"] == "inconclusive"
    # wrk missing on this machine: only what needs wrk is inconclusive
    s = _summary(tmp_path / "nowrk", *clauses, capacity=Capacity(wrk_buy_rps=None))
    assert _clause(s, clauses[0])["status"] in ("pass", "fail")
    assert _clause(s, clauses[1])["reason"].endswith("wrk not installed")


def test_a_starved_generator_keeps_a_relative_timing_clause_inconclusive(tmp_path: Path) -> None:
    clause = "latency_ms.p99 < 0.001 * ideal.drain_ms"  # would fail if it were judged
    s = _summary(tmp_path, clause, generator=OVERLOADED)
    result = _clause(s, clause)
    assert result["status"] == "inconclusive" and "load generator unhealthy" in result["reason"]
    assert s["verdict"] == "inconclusive"


def test_both_sides_are_printed() -> None:
    result = {"key": "latency_ms.p99", "op": "<", "measured": 2480.0, "factor": 1.5,
              "ref": "ideal.drain_ms", "ref_value": 1790.0, "expected": 2685.0}  # fmt: skip
    assert sides(result) == "latency_ms.p99 2,480 ms < 1.5 × ideal.drain_ms 1,790 ms = 2,685 ms"
    assert bound_text(result | {"ref_value": None, "expected": None}) == (
        "< 1.5 × ideal.drain_ms (not measured)"
    )
    absolute = {"key": "throughput_rps", "op": ">", "measured": 812.4, "expected": 700.0}
    assert sides(absolute) == "throughput_rps 812 req/s > 700 req/s"


def test_ideal_needs_a_purchase_rate() -> None:
    assert ideal({"buy_rps": 500.0}, 1000, 100) == {
        "drain_s": 2.0,
        "drain_ms": 2000.0,
        "sellout_s": 0.2,
    }
    assert ideal({"buy_rps": None}, 1000, 100) == dict.fromkeys(
        ("drain_s", "drain_ms", "sellout_s")
    )


# --- trial sets and compare -------------------------------------------------------------------------


def _set(path: Path, clause: str, capacities: list[float], **spec: Any) -> dict[str, Any]:
    specs = [
        SyntheticSpec(seed=10 + i, hypothesis=[clause], capacity=Capacity(buy_rps=rps), **spec)
        for i, rps in enumerate(capacities)
    ]
    write_synthetic_set(path, specs)
    return summarize_set(load_set(path))


def test_a_trial_set_judges_a_relative_clause_on_the_ratio(tmp_path: Path) -> None:
    capacities = [1000.0, 1100.0, 900.0, 1050.0]  # four runs' worth of capacity
    probe = _set(tmp_path / "probe", "latency_ms.p99 < 1 * ideal.drain_ms", capacities)
    result = probe["hypothesis"][0]
    trials = [load_run(tmp_path / "probe" / f"trial-0{i}") for i in range(1, 5)]
    ratios = [summarize(t)["relative"]["p99_over_drain"] for t in trials]
    assert result["ref"] == "ideal.drain_ms"
    assert result["ratios"] == pytest.approx(ratios, abs=1e-4)  # the summary rounds to 4 places
    # The interval is the median's (a t interval at n = 4: it may reach past the ratios seen).
    assert 0 < result["ci_low"] <= result["median"] <= result["ci_high"]
    above, below = result["ci_high"] * 1.5, result["ci_low"] / 1.5
    passing = _set(tmp_path / "pass", f"latency_ms.p99 < {above:.4f} * ideal.drain_ms", capacities)
    failing = _set(tmp_path / "fail", f"latency_ms.p99 < {below:.4f} * ideal.drain_ms", capacities)
    assert passing["hypothesis"][0]["status"] == "pass" and passing["verdict"] == "pass"
    assert failing["hypothesis"][0]["status"] == "fail"
    assert "of latency_ms.p99 / ideal.drain_ms" in failing["hypothesis"][0]["reason"]


def test_a_trial_without_capacity_makes_the_set_inconclusive(tmp_path: Path) -> None:
    clause = "latency_ms.p99 < 100 * ideal.drain_ms"
    specs = [SyntheticSpec(seed=1, hypothesis=[clause]), SyntheticSpec(seed=2, hypothesis=[clause])]
    specs[1] = replace(specs[1], capacity=None)
    write_synthetic_set(tmp_path, specs)
    result = summarize_set(load_set(tmp_path))
    assert result["hypothesis"][0]["status"] == "inconclusive"
    assert "trial(s) 2" in result["hypothesis"][0]["reason"]


def test_compare_shows_the_ratios_and_a_capacity_difference(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "a", SyntheticSpec())
    write_synthetic(tmp_path / "b", SyntheticSpec(capacity=Capacity(buy_rps=1000.0)))
    comparison = compare(tmp_path / "a", tmp_path / "b")
    rows = {r.metric: r for r in comparison.rows}
    assert rows["p99"].a == rows["p99"].b  # the same sale ...
    assert rows["p99_over_drain"].b == pytest.approx(rows["p99_over_drain"].a / 2, rel=1e-2)
    assert rows["throughput_over_buy"].b == pytest.approx(
        2 * rows["throughput_over_buy"].a, rel=1e-3
    )
    line = next(d for d in comparison.differences if d.startswith("capacity:"))
    assert "2,000" in line and "1,000" in line and "x2.00" in line
