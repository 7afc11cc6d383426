"""Trial sets and comparisons on synthetic runs: the CI rules, the set verdict, the files, `compare`'s outcomes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flashlab.analysis import intervals
from flashlab.analysis.compare import ComparisonError
from flashlab.analysis.compare import compare
from flashlab.analysis.outputs import write_set_outputs
from flashlab.analysis.trials import KEY_METRICS
from flashlab.analysis.trials import SET_MANIFEST
from flashlab.analysis.trials import Trial
from flashlab.analysis.trials import TrialSetError
from flashlab.analysis.trials import decide_on_interval
from flashlab.analysis.trials import judge_clause
from flashlab.analysis.trials import judge_set
from flashlab.analysis.trials import load_set
from flashlab.testing.synthetic import OVERLOADED
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic_set

SAFE = ["oversell == 0", "lost_acknowledged == 0"]


def _specs(n: int = 3, **spec: Any) -> list[SyntheticSpec]:
    return [SyntheticSpec(seed=10 + i, **spec) for i in range(n)]


def _trial(index: int, clause: str, measured: float | None, status: str, key: str) -> Trial:
    result = {"clause": clause, "key": key, "op": "<", "expected": 800.0, "measured": measured,
              "ok": status == "pass", "class": "timing", "status": status, "reason": "starved"}  # fmt: skip
    return Trial(index, f"trial-{index:02d}", index, {"hypothesis": [result]})


# --- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "low", "high", "status"),
    [
        ("<", 700, 790, "pass"),  # upper bound under the threshold
        ("<", 700, 900, "inconclusive"),  # straddles
        ("<", 800, 900, "fail"),  # entirely at or over
        ("<=", 700, 800, "pass"),
        (">", 801, 900, "pass"),  # lower bound over the threshold
        (">", 700, 900, "inconclusive"),
        (">", 600, 800, "fail"),
        (">=", 800, 900, "pass"),
        ("==", 800, 800, "pass"),
        ("==", 700, 900, "inconclusive"),
        ("==", 801, 900, "fail"),
        ("!=", 801, 900, "pass"),
        ("!=", 800, 800, "fail"),
    ],
)
def test_timing_clause_is_judged_on_the_interval(
    op: str, low: float, high: float, status: str
) -> None:
    assert decide_on_interval(op, 800.0, low, high) == status


def test_set_timing_clause_on_the_ci_bound() -> None:
    clause = "latency_ms.p99 < 800"

    def judged(values: list[float]) -> dict:
        trials = [_trial(i + 1, clause, v, "pass" if v < 800 else "fail", "latency_ms.p99")
                  for i, v in enumerate(values)]  # fmt: skip
        return judge_clause(clause, trials)

    # Two of three trials under 800, but the interval of the median reaches past 900: not proven.
    straddling = judged([700.0, 750.0, 900.0])
    assert straddling["status"] == "inconclusive"
    assert straddling["ci_low"] < 700.0 and straddling["ci_high"] > 900.0  # 3 trials: t interval
    assert "straddles 800" in straddling["reason"]
    assert judged([700.0, 710.0, 720.0])["status"] == "pass"
    assert judged([900.0, 910.0, 920.0])["status"] == "fail"
    # Three trials all under 800 but spread out: the median's 95% interval still reaches 800.
    assert judged([700.0, 720.0, 760.0])["status"] == "inconclusive"


def test_an_untrusted_trial_makes_the_timing_clause_inconclusive() -> None:
    clause = "latency_ms.p99 < 800"
    trials = [
        _trial(1, clause, 100.0, "pass", "latency_ms.p99"),
        _trial(2, clause, 100.0, "inconclusive", "latency_ms.p99"),
    ]
    result = judge_clause(clause, trials)
    assert result["status"] == "inconclusive"
    assert result["reason"] == "untrusted in trial(s) 2: starved"


def test_set_intervals_are_the_intervals_module_s() -> None:
    # How the intervals are computed and how they cover: tests/test_intervals.py.
    values = [812.0, 845.0, 790.0, 901.0, 833.0, 850.0]
    first = intervals.median_ci(values)
    assert first == intervals.median_ci(values)  # no randomness: the same trials, the same interval
    assert (first.low, first.high) == (790.0, 901.0)  # 6 trials: order statistics, the range
    assert intervals.method()["statistic"] == "median"
    assert intervals.median_ci([5.0]).low is None  # one value: no interval


# --- a synthetic set end to end ---------------------------------------------------------------------


def test_synthetic_set_outputs(tmp_path: Path) -> None:
    hypothesis = [*SAFE, "latency_ms.p99 < 100000", "throughput_rps > 1"]
    write_synthetic_set(tmp_path, _specs(hypothesis=hypothesis))
    result = write_set_outputs(tmp_path, require_complete=True)
    assert result["verdict"] == "pass" and result["verdict_reasons"] == []
    assert [c["status"] for c in result["hypothesis"]] == ["pass"] * 4
    frame = pd.read_parquet(tmp_path / "trials.parquet")
    assert list(frame["trial"]) == [1, 2, 3] and list(frame["seed"]) == [10, 11, 12]
    assert {m.name for m in KEY_METRICS} <= set(frame.columns)
    on_disk = json.loads((tmp_path / "trials.json").read_text())
    assert on_disk == result
    p99 = result["metrics"]["p99"]
    assert p99["values"] == list(frame["p99"])
    assert p99["ci_low"] <= p99["median"] <= p99["ci_high"]
    html = (tmp_path / "trials.html").read_text()
    assert 'class="banner verdict-pass"' in html and "data:image/png;base64," in html


def test_profile_share_clause_and_its_interval(tmp_path: Path) -> None:
    """`fairness.profiles.<p>.unit_share` is a clause key and, per profile, a metric with a CI."""
    from flashlab.analysis.hypothesis import evaluate

    write_synthetic_set(tmp_path, _specs(hypothesis=SAFE))
    result = write_set_outputs(tmp_path, require_complete=True)
    trial = json.loads((tmp_path / "trial-01" / "summary.json").read_text())
    profiles = trial["fairness"]["profiles"]
    assert profiles, "synthetic runs record each shopper's profile"
    name = sorted(profiles)[0]
    share = profiles[name]["unit_share"]
    assert evaluate([f"fairness.profiles.{name}.unit_share <= {share}"], trial)[0]
    assert not evaluate([f"fairness.profiles.{name}.unit_share < {share}"], trial)[0]
    assert not evaluate(["fairness.profiles.nobody.unit_share < 1"], trial)[0]  # not measured
    metric = result["metrics"][f"{name}_unit_share"]
    assert metric["path"] == f"fairness.profiles.{name}.unit_share"
    assert (
        metric["values"][0] == share and metric["ci_low"] <= metric["median"] <= metric["ci_high"]
    )
    frame = pd.read_parquet(tmp_path / "trials.parquet")
    assert list(frame[f"{name}_unit_share"]) == metric["values"]


def test_safety_failure_in_one_trial_fails_the_set(tmp_path: Path) -> None:
    specs = _specs(hypothesis=SAFE)
    specs[1] = SyntheticSpec(seed=11, hypothesis=SAFE, plant={"oversell": 2})
    write_synthetic_set(tmp_path, specs)
    result = write_set_outputs(tmp_path)
    assert result["verdict"] == "fail"
    assert result["hypothesis"][0]["trials"] == ["pass", "fail", "pass"]
    assert result["verdict_reasons"] == [
        "clause 'oversell == 0' fail: failed in trial(s) 2 (measured 2)"
    ]


def test_overloaded_trial_makes_the_set_inconclusive(tmp_path: Path) -> None:
    hypothesis = [*SAFE, "latency_ms.p99 < 100000"]
    specs = _specs(hypothesis=hypothesis)
    specs[2] = SyntheticSpec(seed=12, hypothesis=hypothesis, generator=OVERLOADED)
    write_synthetic_set(tmp_path, specs)
    result = write_set_outputs(tmp_path)
    assert result["verdict"] == "inconclusive"
    assert "untrusted in trial(s) 3: load generator unhealthy" in result["verdict_reasons"][0]


def test_missing_or_incomplete_trial_is_refused(tmp_path: Path) -> None:
    write_synthetic_set(tmp_path / "s", _specs())
    shutil.rmtree(tmp_path / "s" / "trial-02")
    with pytest.raises(TrialSetError, match="trial trial-02 is missing"):
        load_set(tmp_path / "s")
    write_synthetic_set(tmp_path / "t", _specs())
    manifest = tmp_path / "t" / "trial-03" / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"complete": False}))
    with pytest.raises(TrialSetError, match="trial trial-03 is incomplete"):
        load_set(tmp_path / "t")
    short = tmp_path / "u"
    write_synthetic_set(short, _specs())
    data = json.loads((short / SET_MANIFEST).read_text())
    (short / SET_MANIFEST).write_text(json.dumps(data | {"trials": data["trials"][:2]}))
    with pytest.raises(TrialSetError, match="has 2 of 3 trials"):
        load_set(short)


def test_judge_set_without_hypothesis_passes() -> None:
    assert judge_set([], [])[1] == "pass"


# --- compare ------------------------------------------------------------------------------------


def _rows(comparison) -> dict[str, Any]:
    return {r.metric: r for r in comparison.rows}


def test_compare_trial_sets_finds_the_slower_one(tmp_path: Path) -> None:
    write_synthetic_set(tmp_path / "fast", _specs(service_ms=2.0))
    write_synthetic_set(tmp_path / "slow", _specs(service_ms=40.0))
    rows = _rows(compare(tmp_path / "fast", tmp_path / "slow"))
    p99 = rows["p99"]
    assert p99.basis == "CI" and p99.outcome == "worse"
    assert p99.diff_ci_low > 0 and p99.diff == p99.b - p99.a
    assert rows["oversell"].outcome == "same" and rows["oversell"].basis == "exact"
    back = _rows(compare(tmp_path / "slow", tmp_path / "fast"))
    assert back["p99"].outcome == "better"
    same = _rows(compare(tmp_path / "fast", tmp_path / "fast"))
    assert same["p99"].outcome in ("within noise", "same")


def test_compare_single_runs_claims_nothing_about_timings(tmp_path: Path) -> None:
    from flashlab.testing.synthetic import write_synthetic

    write_synthetic(tmp_path / "a", SyntheticSpec(service_ms=2.0))
    write_synthetic(tmp_path / "b", SyntheticSpec(service_ms=40.0, plant={"oversell": 1}))
    comparison = compare(tmp_path / "a", tmp_path / "b")
    rows = _rows(comparison)
    assert rows["p99"].outcome == "single run" and rows["p99"].diff_ci_low is None
    assert rows["oversell"].outcome == "worse" and rows["oversell"].diff == 1  # exact
    assert [r.metric for r in comparison.worse(["p99", "oversell"])] == ["oversell"]
    data = comparison.to_dict()
    assert data["a"]["kind"] == "run" and len(data["rows"]) == len(KEY_METRICS)
    json.dumps(data, allow_nan=False)


def test_compare_refuses_different_workloads_without_force(tmp_path: Path) -> None:
    write_synthetic_set(tmp_path / "small", _specs(stock=100))
    write_synthetic_set(tmp_path / "large", _specs(stock=200))
    with pytest.raises(ComparisonError, match=r"different experiments .*stock: 100 vs 200"):
        compare(tmp_path / "small", tmp_path / "large")
    forced = compare(tmp_path / "small", tmp_path / "large", force=True)
    assert forced.forced and "stock: 100 vs 200" in forced.differences


def test_compare_two_designs_on_one_workload_needs_no_force(tmp_path: Path) -> None:
    # "lua beats lock" is what compare is for: the strategy is the design under test.
    write_synthetic_set(tmp_path / "lua", _specs(strategy="lua"))
    write_synthetic_set(tmp_path / "lock", _specs(strategy="lock"))
    comparison = compare(tmp_path / "lua", tmp_path / "lock")
    assert not comparison.forced and "strategy: lua vs lock" in comparison.differences


def test_check_rejudges_a_trial_set_with_its_exit_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    hypothesis = [*SAFE, "latency_ms.p99 < 100000"]
    specs = _specs(hypothesis=hypothesis)
    write_synthetic_set(tmp_path / "ok", specs)
    specs[0] = SyntheticSpec(seed=10, hypothesis=hypothesis, generator=OVERLOADED)
    write_synthetic_set(tmp_path / "starved", specs)
    codes = {}
    for name in ("ok", "starved"):
        proc = subprocess.run(
            [sys.executable, "-m", "flashlab.cli", "check", str(tmp_path / name), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        codes[name] = (proc.returncode, json.loads(proc.stdout)["verdict"])
        assert (tmp_path / name / "trials.html").exists()  # --write (the default) rewrote them
    assert codes == {"ok": (0, "pass"), "starved": (3, "inconclusive")}


def test_compare_says_when_the_host_ran_slower_under_one_side(tmp_path: Path) -> None:
    from flashlab.core.rundir import MANIFEST
    from flashlab.core.rundir import SUMMARY
    from flashlab.testing.synthetic import write_synthetic

    def run(name: str, unit_us: float | None) -> Path:
        path = tmp_path / name
        write_synthetic(path, SyntheticSpec())
        manifest = json.loads((path / MANIFEST).read_text())
        side = {"cpus": [0], "samples": 20, "median_us": unit_us, "spread": 1.05}
        manifest["host_speed"] = {"stack": side} if unit_us else None
        (path / MANIFEST).write_text(json.dumps(manifest))
        (path / SUMMARY).unlink(missing_ok=True)  # re-judged from the manifest
        return path

    fast, slow, same, unknown = run("f", 400.0), run("s", 520.0), run("e", 410.0), run("u", None)
    [line] = [d for d in compare(fast, slow).differences if d.startswith("host CPU")]
    assert "B's runs saw a 1.30x slower host" in line and "may be the host's" in line
    assert not any(d.startswith("host CPU") for d in compare(fast, same).differences)
    assert not any(d.startswith("host CPU") for d in compare(fast, unknown).differences)
