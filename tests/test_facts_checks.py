"""Checks against runs that lack facts (flashlab.core.facts): a backend described by a target file
may send no user id, extract no order id or read no truth. A check that needs a missing fact is
n/a with the reason, never a silent pass; the others still judge, from what the run offers.

The runs are synthetic (flashlab.testing.synthetic) with their manifest `facts` and truth
`fields` rewritten, and the data the run no longer offers emptied, as a target's run records it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flashlab.analysis.checker import LOADED_CHECKS
from flashlab.analysis.checker import check
from flashlab.analysis.checks.check import run_facts
from flashlab.analysis.junit import run_suite
from flashlab.analysis.junit import to_xml
from flashlab.analysis.markdown import run_markdown
from flashlab.analysis.report import write_report
from flashlab.analysis.summary import summarize
from flashlab.core.facts import FACTS
from flashlab.core.facts import Fact
from flashlab.core.facts import facts_of
from flashlab.core.facts import needs_text
from flashlab.core.rundir import HISTORY
from flashlab.core.rundir import HISTORY_SCHEMA
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import TRUTH
from flashlab.core.rundir import Run
from flashlab.core.rundir import load_run
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic

STOCK = 120
EVERY_FIELD = ["stock", "orders", "order_id", "user_id", "ts_ms"]
# What a target's run offers: (manifest.json facts, truth.json fields).
Offer = tuple[list[str], list[str]]
NO_TRUTH: Offer = (["user", "order_id", "remaining"], [])
NO_USER: Offer = (["order_id", "remaining"], ["stock", "orders", "order_id", "ts_ms"])
BUYERS_ONLY: Offer = (["user", "order_id", "remaining"], ["orders", "user_id"])
NO_ORDER_IDS: Offer = (["user", "remaining"], EVERY_FIELD)
# Each offer -> the checks that are n/a, with the facts they miss (in the order they need them).
NOT_APPLICABLE: dict[str, tuple[Offer, dict[str, list[Fact]]]] = {
    "no truth": (
        NO_TRUTH,
        {
            "lost_acknowledged": [Fact.orders],
            "phantom_orders": [Fact.orders, Fact.order_users],
            "conservation": [Fact.stock, Fact.orders],
            "undersold": [Fact.orders],
            "premature_sold_out": [Fact.orders, Fact.order_times],
        },
    ),
    "no user identity": (
        NO_USER,
        {
            "duplicate_purchases": [Fact.user],
            "phantom_orders": [Fact.user, Fact.order_users],
            "undersold": [Fact.user],
        },
    ),
    "buyers-only truth": (
        BUYERS_ONLY,
        {"conservation": [Fact.stock], "premature_sold_out": [Fact.order_times]},
    ),
    "no order ids in the answers": (NO_ORDER_IDS, {}),
}


def _rewrite_json(path: Path, change: dict[str, Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(data | change), encoding="utf-8")


def _offer_only(run_dir: Path, offer: Offer) -> None:
    """Make a synthetic run look like a target's run offering only `offer`: the facts and
    fields recorded, and what is not offered gone from the history and the truth."""
    facts, fields = offer
    _rewrite_json(run_dir / MANIFEST, {"facts": facts})
    truth = json.loads((run_dir / TRUTH).read_text(encoding="utf-8"))
    kept = {"order_id", "user_id", "ts_ms"} & set(fields)
    orders = [{k: (v if k in kept else None) for k, v in o.items()} for o in truth["orders"]]
    _rewrite_json(
        run_dir / TRUTH,
        {
            "fields": fields,
            "source": "sql" if fields else "none",
            "stock_remaining": truth["stock_remaining"] if "stock" in fields else None,
            "orders": orders if "orders" in fields else [],
            "buyers": truth["buyers"] if "user_id" in fields else [],
        },
    )
    history = pq.read_table(run_dir / HISTORY).to_pandas()
    for fact, column in ((Fact.order_id, "order_id"), (Fact.remaining, "remaining")):
        if fact.value not in facts:
            history[column] = None
    table = pa.Table.from_pandas(history, schema=HISTORY_SCHEMA, preserve_index=False)
    pq.write_table(table, run_dir / HISTORY)


def _run(
    run_dir: Path, offer: Offer, plant: dict[str, int] | None = None, **spec: Any
) -> tuple[Run, dict[str, list[str]]]:
    spec.setdefault("stock", STOCK)
    planted = write_synthetic(
        run_dir, SyntheticSpec(seed=7, shoppers=400, plant=plant or {}, **spec)
    )
    _offer_only(run_dir, offer)
    return load_run(run_dir), planted


def _op_ids(run: Run, order_ids: list[str]) -> set[str]:
    h = run.history
    return set(h.loc[h["order_id"].isin(order_ids), "op_id"])


# --- which checks are n/a, and why -------------------------------------------------------------


@pytest.mark.parametrize("case", list(NOT_APPLICABLE))
def test_a_check_needing_a_missing_fact_is_na_with_the_facts_it_misses(
    tmp_path: Path, case: str
) -> None:
    offer, expected = NOT_APPLICABLE[case]
    results = check(_run(tmp_path, offer)[0])
    assert {name for name, r in results.items() if r.na} == set(expected)
    for name, missing in expected.items():
        r = results[name]
        assert (r.ok, r.count, r.status) == (None, None, "n/a"), name
        assert r.na == needs_text(missing) and r.detail == f"n/a: {r.na}"
        assert all(FACTS[f] in r.na for f in missing)


@pytest.mark.parametrize("case", list(NOT_APPLICABLE))
def test_every_check_the_run_can_answer_still_runs_and_passes_a_clean_sale(
    tmp_path: Path, case: str
) -> None:
    offer, expected = NOT_APPLICABLE[case]
    results = check(_run(tmp_path, offer)[0])
    ran = {name: r for name, r in results.items() if name not in expected}
    assert {"oversell", "server_errors", "unknown_answers"} <= set(ran)
    for name, r in ran.items():
        assert r.na is None and r.ok is True and r.count == 0, (name, r)


def test_oversell_without_an_order_log_counts_acknowledged_purchases_beyond_the_stock(
    tmp_path: Path,
) -> None:
    run, planted = _run(tmp_path, NO_TRUTH, {"oversell": 3})
    result = check(run)["oversell"]
    assert (result.ok, result.count) == (False, 3)
    assert set(result.examples) == _op_ids(run, planted["oversell"])  # the latest acknowledgements
    assert f"{STOCK + 3} purchases acknowledged for {STOCK} units" in result.detail
    assert "the truth has no order log" in result.detail


def test_oversell_with_an_order_log_counts_the_orders_in_the_truth(tmp_path: Path) -> None:
    run, _ = _run(tmp_path, BUYERS_ONLY, {"oversell": 2})
    result = check(run)["oversell"]
    assert (result.ok, result.count) == (False, 2)
    assert f"{STOCK + 2} orders in sql for {STOCK} units" in result.detail


def test_duplicate_purchases_needs_a_user_but_no_truth(tmp_path: Path) -> None:
    run, planted = _run(tmp_path, NO_TRUTH, {"duplicate_purchases": 2}, stock=1_000, busy_p=0.0)
    result = check(run)["duplicate_purchases"]
    assert (result.ok, result.count) == (False, 2)
    assert result.examples == sorted(planted["duplicate_purchases"])
    assert "2 were acknowledged > 1 time" in result.detail


@pytest.mark.parametrize(
    ("offer", "runs"),
    [
        ((["user"], ["stock"]), True),
        ((["user", "remaining"], []), True),
        ((["user"], ["orders", "user_id"]), False),
    ],
    ids=["stock only", "remaining only", "neither"],
)
def test_negative_stock_runs_when_either_the_answers_or_the_truth_tell_the_stock(
    tmp_path: Path, offer: Offer, runs: bool
) -> None:
    result = check(_run(tmp_path, offer)[0])["negative_stock"]
    if runs:
        assert (result.na, result.ok, result.count) == (None, True, 0)
    else:
        assert result.na == (
            f"{needs_text([Fact.remaining])} or {needs_text([Fact.stock])} (it offers neither)"
        )
        assert (result.ok, result.count) == (None, None)


def test_negative_stock_from_the_answers_alone(tmp_path: Path) -> None:
    run, planted = _run(tmp_path, NO_TRUTH, {"negative_stock": 2})
    result = check(run)["negative_stock"]
    assert (result.count, set(result.examples)) == (2, set(planted["negative_stock"]))
    assert "final stock not read" in result.detail


def test_negative_stock_from_the_truth_alone(tmp_path: Path) -> None:
    _run(tmp_path, (["user"], ["stock"]))
    _rewrite_json(tmp_path / TRUTH, {"stock_remaining": -2})
    result = check(load_run(tmp_path))["negative_stock"]
    assert (result.count, result.examples) == (1, ["truth:stock_remaining=-2"])


@pytest.mark.parametrize(
    ("offer", "on"),
    [(NO_ORDER_IDS, "user_id"), (NO_USER, "order_id"), (BUYERS_ONLY, "user_id")],
    ids=["no order ids", "no user", "buyers only"],
)
def test_lost_acknowledged_matches_on_what_both_sides_carry_and_finds_a_lost_order(
    tmp_path: Path, offer: Offer, on: str
) -> None:
    run, planted = _run(tmp_path, offer, {"lost_acknowledged": 2})
    result = check(run)["lost_acknowledged"]
    assert (result.ok, result.count) == (False, 2)
    assert set(result.examples) == set(planted["lost_acknowledged"])
    assert result.detail.endswith(f"(matched on {on})")


def test_lost_acknowledged_is_na_when_nothing_is_carried_on_both_sides(tmp_path: Path) -> None:
    run, _ = _run(tmp_path, (["remaining"], ["stock", "orders", "order_id", "ts_ms"]))
    results = check(run)
    assert results["lost_acknowledged"].na is not None
    assert results["lost_acknowledged"].na.startswith("needs to match orders to acknowledgements")
    assert results["premature_sold_out"].na == results["lost_acknowledged"].na
    assert results["oversell"].ok is True and results["conservation"].ok is True


# --- the summary, the verdict and every place a check is shown ---------------------------------

NO_TRUTH_NA = NOT_APPLICABLE["no truth"][1]


def _summary(
    run_dir: Path, hypothesis: list[str], plant: dict[str, int] | None = None
) -> dict[str, Any]:
    run, _ = _run(run_dir, NO_TRUTH, plant, hypothesis=hypothesis)
    return summarize(run)


def test_the_summary_names_na_checks_with_their_reasons_apart_from_unknown_ones(
    tmp_path: Path,
) -> None:
    s = _summary(tmp_path, ["oversell == 0"])
    assert s["na_checks"] == {name: needs_text(m) for name, m in NO_TRUTH_NA.items()}
    assert s["unknown_checks"] == [] and s["failed_checks"] == []
    assert s["checks"]["lost_acknowledged"]["na"] == needs_text([Fact.orders])
    assert "na" not in s["checks"]["oversell"]
    assert s["lost_acknowledged"] is None and s["conservation_errors"] is None
    assert s["oversell"] == 0 and s["sold"] is None and s["stock_remaining"] is None
    assert s["verdict"] == "pass"  # no clause names an n/a check


def test_a_clause_on_an_na_check_is_inconclusive_never_a_pass(tmp_path: Path) -> None:
    s = _summary(tmp_path, ["oversell == 0", "lost_acknowledged == 0"])
    status = {c["clause"]: c["status"] for c in s["hypothesis"]}
    assert status == {"oversell == 0": "pass", "lost_acknowledged == 0": "inconclusive"}
    assert s["verdict"] == "inconclusive"
    reason = f"check lost_acknowledged is n/a: {needs_text([Fact.orders])}"
    assert s["verdict_reasons"] == [f"clause 'lost_acknowledged == 0' inconclusive: {reason}"]


def test_a_failing_safety_clause_still_fails_next_to_an_na_one(tmp_path: Path) -> None:
    s = _summary(tmp_path, ["oversell == 0", "lost_acknowledged == 0"], {"oversell": 2})
    status = {c["clause"]: c["status"] for c in s["hypothesis"]}
    assert status == {"oversell == 0": "fail", "lost_acknowledged == 0": "inconclusive"}
    assert s["verdict"] == "fail" and s["failed_checks"] == ["oversell"]
    assert s["verdict_reasons"][0].startswith("clause 'oversell == 0' failed: measured 2")


def test_junit_shows_an_na_check_as_skipped_with_its_reason(tmp_path: Path) -> None:
    s = _summary(tmp_path, ["oversell == 0", "lost_acknowledged == 0"])
    cases = {(c.classname, c.name): c for c in run_suite(s, "exp").cases}
    for name, missing in NO_TRUTH_NA.items():
        case = cases[("exp.checks", name)]
        assert (case.outcome, case.message) == ("skipped", f"n/a: {needs_text(missing)}")
    assert cases[("exp.checks", "oversell")].outcome == "passed"
    assert cases[("exp.hypothesis", "lost_acknowledged == 0")].outcome == "skipped"
    suite = ET.fromstring(to_xml([run_suite(s, "exp")])).find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("skipped")) == ("0", str(len(NO_TRUTH_NA) + 1))


def test_the_markdown_summary_lists_an_na_check_with_its_reason(tmp_path: Path) -> None:
    text = run_markdown(_summary(tmp_path, ["oversell == 0"]), "exp")
    for name, missing in NO_TRUTH_NA.items():
        assert f"- **{name}**: n/a — {needs_text(missing)}" in text
    assert "**oversell**" not in text


def test_the_html_report_marks_an_na_check_and_says_why(tmp_path: Path) -> None:
    _run(tmp_path, NO_TRUTH, hypothesis=["oversell == 0", "lost_acknowledged == 0"])
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "checks that do not apply to this backend (n/a): " + ", ".join(NO_TRUTH_NA) in html
    assert html.count("– n/a") == len(NO_TRUTH_NA)
    assert f"n/a: {needs_text([Fact.stock, Fact.orders])}" in html  # conservation's detail
    assert "a clause on it is inconclusive, never a pass" in html


# --- runs made before facts were recorded ------------------------------------------------------


def test_a_run_recorded_before_facts_existed_offers_every_fact(tmp_path: Path) -> None:
    write_synthetic(tmp_path, SyntheticSpec(seed=7, shoppers=400, stock=STOCK))
    truth = json.loads((tmp_path / TRUTH).read_text(encoding="utf-8"))
    for key in ("fields", "source"):
        truth.pop(key)
    (tmp_path / TRUTH).write_text(json.dumps(truth), encoding="utf-8")
    manifest = json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8"))
    assert "facts" not in manifest
    run = load_run(tmp_path)
    assert run_facts(run) == frozenset(Fact) == facts_of({}, None)
    results = check(run)
    assert set(results) == set(LOADED_CHECKS)
    assert all(r.na is None and r.ok for r in results.values()), results
    assert summarize(run)["na_checks"] == {}


def test_recorded_facts_are_taken_as_written(tmp_path: Path) -> None:
    offered = facts_of({"facts": ["user", "someday"]}, ["orders", "user_id", "colour"])
    assert offered == {Fact.user, Fact.orders, Fact.order_users}
    assert facts_of({"facts": []}, []) == frozenset()
