"""The three-valued verdict: clause classes, timing clauses inconclusive on untrusted measurements,
safety clauses always deciding, verdict_reasons, exit codes, the amber banner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flashlab.analysis.hypothesis import clause_class
from flashlab.analysis.hypothesis import judge
from flashlab.analysis.hypothesis import overall
from flashlab.analysis.summary import summarize
from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import EXIT_INCONCLUSIVE
from flashlab.core.errors import EXIT_OK
from flashlab.core.errors import EXIT_VERDICT_FAIL
from flashlab.core.errors import verdict_exit_code
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import load_run
from flashlab.testing.synthetic import OVERLOADED
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic

MIXED = ["oversell == 0", "lost_acknowledged == 0", "latency_ms.p99 < 10000"]


def _summary(path: Path, manifest_extra: dict[str, Any] | None = None, **spec: Any) -> dict:
    write_synthetic(path, SyntheticSpec(**spec))
    if manifest_extra:
        manifest = json.loads((path / MANIFEST).read_text())
        (path / MANIFEST).write_text(json.dumps(manifest | manifest_extra))
    return summarize(load_run(path))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("latency_ms.p99", "timing"),
        ("service_latency_ms.p50", "timing"),
        ("throughput_rps", "timing"),
        ("duration_s", "timing"),
        ("sellout_s", "timing"),
        ("recovery.redis-kill.recovery_s", "timing"),
        ("window.during.availability", "timing"),
        ("generator_stalled_s", "timing"),
        ("generator_lag_ms_p99", "timing"),
        ("phase.spike.latency_ms.p99", "timing"),
        ("phase.spike.oversell", "safety"),
        ("oversell", "safety"),
        ("lost_acknowledged", "safety"),
        ("duplicate_purchases", "safety"),
        ("server_error_rate", "safety"),
        ("stock_remaining", "safety"),
        ("conflict_rate", "safety"),
    ],
)
def test_clause_class(key: str, expected: str) -> None:
    assert clause_class(key) == expected


def test_exit_codes_are_the_shared_interface() -> None:
    assert (EXIT_OK, EXIT_VERDICT_FAIL, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE) == (0, 1, 2, 3)
    assert [verdict_exit_code(v) for v in ("pass", "fail", "inconclusive", "??")] == [0, 1, 3, 1]


def test_overall_rule() -> None:
    assert overall([]) == "pass"
    assert overall(["pass", "inconclusive"]) == "inconclusive"
    assert overall(["inconclusive", "fail", "pass"]) == "fail"


def test_healthy_run_judges_timing_clauses(tmp_path: Path) -> None:
    s = _summary(tmp_path / "a", hypothesis=MIXED)
    assert s["verdict"] == "pass" and s["verdict_reasons"] == []
    assert [c["class"] for c in s["hypothesis"]] == ["safety", "safety", "timing"]
    assert [c["status"] for c in s["hypothesis"]] == ["pass", "pass", "pass"]
    # ... and a timing clause that does not hold fails it (the generator was healthy).
    s = _summary(tmp_path / "b", hypothesis=["latency_ms.p99 < 0.001"])
    assert s["verdict"] == "fail"
    assert s["verdict_reasons"][0].startswith("clause 'latency_ms.p99 < 0.001' failed: measured")


def test_unhealthy_generator_makes_timing_clauses_inconclusive(tmp_path: Path) -> None:
    s = _summary(tmp_path, generator=OVERLOADED, hypothesis=MIXED)
    assert s["verdict"] == "inconclusive"
    assert [c["status"] for c in s["hypothesis"]] == ["pass", "pass", "inconclusive"]
    assert s["hypothesis"][2]["ok"] is True  # measured and held, but cannot be trusted
    assert s["verdict_reasons"] == [
        "clause 'latency_ms.p99 < 10000' inconclusive: load generator unhealthy"
        " (lag p99 180 ms, stalled 2.40 s)"
    ]


def test_safety_clauses_still_decide_with_an_unhealthy_generator(tmp_path: Path) -> None:
    s = _summary(tmp_path / "f", generator=OVERLOADED, hypothesis=MIXED, plant={"oversell": 2})
    assert s["verdict"] == "fail"
    assert [c["status"] for c in s["hypothesis"]] == ["fail", "pass", "inconclusive"]
    assert s["verdict_reasons"][0] == "clause 'oversell == 0' failed: measured 2 (expected == 0)"
    assert "inconclusive" in s["verdict_reasons"][1]
    # Only safety clauses: nothing to distrust, the run passes.
    only_safety = _summary(tmp_path / "p", generator=OVERLOADED, hypothesis=MIXED[:2])
    assert only_safety["verdict"] == "pass"


@pytest.mark.parametrize(
    ("isolation", "verdict"),
    [
        (None, "pass"),  # absent: not requested (runs without isolation support)
        ({"mode": "off", "requested": False, "applied": False, "reason": None}, "pass"),
        ({"mode": "auto", "requested": True, "applied": True, "reason": None}, "pass"),
        ({"mode": "auto", "requested": True, "applied": False, "reason": "1 CPU"}, "inconclusive"),
    ],
)
def test_isolation_requested_but_not_applied(
    tmp_path: Path, isolation: dict | None, verdict: str
) -> None:
    extra = {"isolation": isolation} if isolation is not None else None
    s = _summary(tmp_path, manifest_extra=extra, hypothesis=MIXED)
    assert s["verdict"] == verdict
    assert s["isolation"]["requested"] is bool(isolation and isolation["requested"])
    if verdict == "inconclusive":
        assert s["verdict_reasons"] == [
            "clause 'latency_ms.p99 < 10000' inconclusive:"
            " CPU isolation requested but not applied (1 CPU)"
        ]


def test_aborted_run_fails_with_the_reason_first(tmp_path: Path) -> None:
    # The live monitor (flashlab.lab.guards.monitor) writes the reason as the sentence to show.
    reason = "aborted by guard 'oversell_live > 0' at t=1.23s"
    aborted = {"by": "guard", "guard": "oversell_live > 0", "t_s": 1.234, "reason": reason}
    s = _summary(tmp_path, manifest_extra={"aborted": aborted}, hypothesis=MIXED)
    assert s["verdict"] == "fail"
    assert s["aborted"] == aborted
    assert s["verdict_reasons"][0] == reason
    # Without a written reason (an older writer), the sentence is made from the fields.
    del aborted["reason"]
    s = _summary(tmp_path / "bare", manifest_extra={"aborted": aborted}, hypothesis=MIXED)
    assert s["verdict_reasons"][0] == reason


def test_judge_keeps_measurements_and_orders_reasons() -> None:
    results = [
        {"clause": "p", "key": "latency_ms.p99", "op": "<", "expected": 1.0, "measured": 0.5,
         "ok": True, "class": "timing", "status": "pass"},
        {"clause": "s", "key": "oversell", "op": "==", "expected": 0.0, "measured": None,
         "ok": False, "class": "safety", "status": "fail"},
    ]  # fmt: skip
    final, verdict, reasons = judge(results, ["generator starved"])
    assert verdict == "fail"
    assert final[0]["status"] == "inconclusive" and final[0]["measured"] == 0.5
    assert reasons == [
        "clause 's' failed: not measured (expected == 0)",
        "clause 'p' inconclusive: generator starved",
    ]


def test_report_banner_is_amber_for_inconclusive(tmp_path: Path) -> None:
    from flashlab.analysis.report import write_report

    _summary(tmp_path, generator=OVERLOADED, hypothesis=MIXED)
    html = write_report(tmp_path).read_text()
    assert 'class="banner verdict-inconclusive"' in html
    assert ".banner.verdict-inconclusive { background: var(--amber)" in html
    assert "exit 3" in html
    assert "inconclusive: load generator unhealthy" in html
    assert 'class="inconclusive"' in html  # the clause's row


def test_a_clause_on_a_check_that_could_not_run_is_inconclusive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jepsen's check-safe: a crashing check is unknown; its clause cannot pass (nor fail)."""
    from flashlab.analysis.checker import LOADED_CHECKS

    def boom(self: object, run: object) -> None:
        raise ValueError("history column missing")

    monkeypatch.setattr(type(LOADED_CHECKS["lost_acknowledged"]), "run", boom)
    s = _summary(tmp_path, hypothesis=["oversell == 0", "lost_acknowledged == 0"])
    assert s["verdict"] == "inconclusive"
    assert s["lost_acknowledged"] is None and s["checks"]["lost_acknowledged"]["ok"] is None
    assert s["unknown_checks"] == ["lost_acknowledged"] and s["failed_checks"] == []
    status = {c["key"]: c["status"] for c in s["hypothesis"]}
    assert status == {"oversell": "pass", "lost_acknowledged": "inconclusive"}
    assert s["verdict_reasons"] == [
        "clause 'lost_acknowledged == 0' inconclusive: check lost_acknowledged could not run: "
        "ValueError: history column missing"
    ]
    assert verdict_exit_code(s["verdict"]) == EXIT_INCONCLUSIVE


def test_a_failing_clause_still_fails_beside_an_unknown_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flashlab.analysis.checker import LOADED_CHECKS

    monkeypatch.setattr(type(LOADED_CHECKS["undersold"]), "run", lambda self, run: 1 / 0)
    s = _summary(tmp_path, plant={"oversell": 1}, hypothesis=["oversell == 0", "undersold == 0"])
    assert s["verdict"] == "fail"
    assert [c["status"] for c in s["hypothesis"]] == ["fail", "inconclusive"]
    assert s["gave_up"] is None


def test_check_keys_take_the_class_their_check_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    from flashlab.analysis.checker import CHECK_KEYS
    from flashlab.analysis.checker import LOADED_CHECKS

    for key, name in CHECK_KEYS.items():
        assert clause_class(key) == LOADED_CHECKS[name].clause_class == "safety"
    monkeypatch.setattr(type(LOADED_CHECKS["undersold"]), "clause_class", "timing")
    assert clause_class("undersold") == "timing" and clause_class("gave_up") == "timing"
