"""The consistency checker on synthetic run directories: clean runs pass, each planted anomaly is found exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flashlab.analysis.checker import CHECK_KEYS
from flashlab.analysis.checker import LOADED_CHECKS
from flashlab.analysis.checker import check
from flashlab.core.rundir import TRUTH
from flashlab.core.rundir import load_run
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import main
from flashlab.testing.synthetic import write_synthetic

STOCK = 120
K, ANY = "k", "any"
# planter -> (check that must fire with exactly k, checks that fire as a consequence: exactly k,
# exactly a number, or ANY count > 0). Every other registered check must pass.
CASES: dict[str, tuple[str, dict[str, int | str]]] = {
    "oversell": ("oversell", {"conservation": K}),  # extra orders with stock already 0
    "negative_stock": ("negative_stock", {}),
    # Orders gone and stock back: k units left while shoppers were turned away, and every
    # "sold out" came before a moment the log shows stock (as after a restore from a snapshot).
    "lost_acknowledged": ("lost_acknowledged", {"undersold": K, "premature_sold_out": ANY}),
    "duplicate_purchases": ("duplicate_purchases", {}),
    "phantom_orders": ("phantom_orders", {}),
    "server_errors": ("server_errors", {}),
    "conservation": ("conservation", {}),
    "undersold": ("undersold", {}),
    "premature_sold_out": ("premature_sold_out", {}),
    "unknown_answers": ("unknown_answers", {}),
    # Redis came back empty and re-seeded: every sale before the restart is gone, and the new
    # log numbers its orders from o-1 again. lost_acknowledged matches (order id, user), so the
    # new orders cannot stand in for the lost ones: every acknowledged purchase (the stock) is lost.
    "stock_comes_back": ("premature_sold_out", {"lost_acknowledged": STOCK}),
}


def _spec(plant: dict[str, int], seed: int = 7) -> SyntheticSpec:
    # Enough stock left over that a duplicate purchase does not also drive stock negative; no
    # busy answers then, so no shopper gives up while units remain (that would be undersold).
    if "duplicate_purchases" in plant:
        return SyntheticSpec(seed=seed, shoppers=400, stock=1_000, busy_p=0.0, plant=plant)
    return SyntheticSpec(seed=seed, shoppers=400, stock=STOCK, plant=plant)


def test_every_registered_check_has_a_planted_case() -> None:
    assert {name for name, _ in CASES.values()} == set(LOADED_CHECKS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_run_passes_every_check(tmp_path: Path, seed: int) -> None:
    write_synthetic(tmp_path, _spec({}, seed))
    results = check(load_run(tmp_path))
    assert set(results) == set(LOADED_CHECKS)
    for name, result in results.items():
        assert result.ok, (name, result)
        assert result.count == 0 and result.examples == []


@pytest.mark.parametrize("planter", sorted(CASES))
@pytest.mark.parametrize("k", [1, 3])
def test_planted_anomaly_is_flagged_exactly(tmp_path: Path, planter: str, k: int) -> None:
    planted = write_synthetic(tmp_path, _spec({planter: k}))[planter]
    results = check(load_run(tmp_path))
    name, collateral = CASES[planter]
    assert results[name].ok is False
    assert results[name].count == k
    assert set(planted) <= set(results[name].examples)
    for other, result in results.items():
        if other == name:
            continue
        expected = collateral.get(other)
        if expected == ANY:
            assert result.ok is False and result.count, (other, result)
        elif expected is not None:
            assert result.count == (k if expected == K else expected), (other, result)
        else:
            assert result.ok, (other, result)


def test_examples_are_capped_at_ten(tmp_path: Path) -> None:
    planted = write_synthetic(tmp_path, _spec({"lost_acknowledged": 15}))["lost_acknowledged"]
    result = check(load_run(tmp_path))["lost_acknowledged"]
    assert result.count == 15
    assert len(result.examples) == 10
    assert set(result.examples) <= set(planted)


def test_indeterminate_ops_explain_unacknowledged_orders(tmp_path: Path) -> None:
    write_synthetic(tmp_path, _spec({"indeterminate": 4}))
    results = check(load_run(tmp_path))
    assert all(r.ok for r in results.values()), results
    assert "4 explained by indeterminate ops" in results["phantom_orders"].detail


def test_phantoms_and_indeterminates_are_told_apart(tmp_path: Path) -> None:
    planted = write_synthetic(tmp_path, _spec({"indeterminate": 2, "phantom_orders": 3}))
    result = check(load_run(tmp_path))["phantom_orders"]
    assert result.count == 3
    assert set(result.examples) == set(planted["phantom_orders"])
    assert not set(result.examples) & set(planted["indeterminate"])


def test_negative_final_stock_in_truth_is_flagged(tmp_path: Path) -> None:
    write_synthetic(tmp_path, _spec({}))
    truth = json.loads((tmp_path / TRUTH).read_text())
    truth["stock_remaining"] = -2
    (tmp_path / TRUTH).write_text(json.dumps(truth))
    results = check(load_run(tmp_path))
    assert results["negative_stock"].count == 1
    assert results["negative_stock"].examples == ["truth:stock_remaining=-2"]
    assert results["conservation"].count == 2


def test_several_anomalies_at_once(tmp_path: Path) -> None:
    plant = {"lost_acknowledged": 2, "phantom_orders": 2, "server_errors": 5, "negative_stock": 1}
    write_synthetic(tmp_path, _spec(plant))
    results = check(load_run(tmp_path))
    for name, k in plant.items():
        assert results[name].count == k, name
    assert results["oversell"].ok and results["duplicate_purchases"].ok


def test_result_serialises(tmp_path: Path) -> None:
    write_synthetic(tmp_path, _spec({"oversell": 2}))
    as_dict = check(load_run(tmp_path))["oversell"].to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert set(as_dict) == {"ok", "count", "examples", "detail"}
    undersold = check(load_run(tmp_path))["undersold"].to_dict()
    assert set(undersold) == {"ok", "count", "examples", "detail", "figures"}


def test_synthetic_cli_rejects_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, needle in [(["oversell=x"], "oversell=x"), (["bogus=1"], "'bogus'"), ([], "usage")]:
        assert main([str(tmp_path / "run"), *args] if args else []) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    assert main([str(tmp_path / "run"), "phantom_orders=2"]) == 0
    assert json.loads(capsys.readouterr().out)["planted"]["phantom_orders"]
    assert check(load_run(tmp_path / "run"))["phantom_orders"].count == 2


def test_synthetic_runs_are_reproducible(tmp_path: Path) -> None:
    spec = _spec({"oversell": 2, "phantom_orders": 1})
    write_synthetic(tmp_path / "a", spec)
    write_synthetic(tmp_path / "b", spec)
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


# --- the new outcome checks, case by case ----------------------------------------------------------


def test_premature_sold_out_before_a_later_sale(tmp_path: Path) -> None:
    planted = write_synthetic(tmp_path, _spec({"premature_sold_out": 3}))["premature_sold_out"]
    run = load_run(tmp_path)
    result = check(run)["premature_sold_out"]
    assert result.count == 3 and set(result.examples) == set(planted)
    h = run.history
    last_sale = h.loc[h["type"].eq("ok"), "invoke_ns"].max()
    told = h[h["op_id"].isin(planted)]
    assert (told["code"] == "sold_out").all() and (told["complete_ns"] < last_sale).all()
    assert "last sale sent" in result.detail


def test_premature_sold_out_when_stock_comes_back_after_a_restart(tmp_path: Path) -> None:
    """Redis back without persistence, re-seeded: the order log restarts, stock is back; the
    sold-out answers before the restart are premature although no client saw a later 200."""
    planted = write_synthetic(tmp_path, _spec({"stock_comes_back": 4}))["stock_comes_back"]
    run = load_run(tmp_path)
    h = run.history
    assert (
        not h.loc[h["type"].eq("ok"), "invoke_ns"]
        .gt(h.loc[h["op_id"].isin(planted), "complete_ns"].min())
        .any()
    )  # only the order log can tell: the later sales all timed out
    result = check(run)["premature_sold_out"]
    assert result.count == 4 and result.examples == planted
    after = h[h["code"].eq("sold_out") & ~h["op_id"].isin(planted)]
    assert len(after) > 0  # the answers after the re-seeded stock ran out again are correct


def test_lost_acknowledged_is_not_fooled_by_order_ids_reused_after_a_restart(
    tmp_path: Path,
) -> None:
    """Planted (flashlab/testing/synthetic.py `stock_comes_back`): every acknowledged id is in the new
    log again, held by other users; matching by id alone found them all (0 lost)."""
    write_synthetic(tmp_path, _spec({"stock_comes_back": 2}))
    run = load_run(tmp_path)
    ok = run.history[run.history["type"].eq("ok")]
    truth_ids = {o.order_id: o.user_id for o in run.truth.orders}
    assert set(ok["order_id"]) <= set(truth_ids)  # the blind spot: every id is "found"
    assert not any(truth_ids[o] == u for o, u in zip(ok["order_id"], ok["user_id"], strict=True))
    result = check(run)["lost_acknowledged"]
    assert result.count == len(ok) == STOCK


def test_premature_sold_out_matches_its_definition_pair_by_pair(tmp_path: Path) -> None:
    """The vectorised check against the definition spelled out over every (answer, sale) pair."""
    write_synthetic(tmp_path, _spec({"lost_acknowledged": 2, "premature_sold_out": 2}))
    run = load_run(tmp_path)
    h = run.history
    oks = h[h["type"].eq("ok")]
    orders = sorted(run.truth.orders, key=lambda o: (o.ts_ms, o.order_id))
    log_sold_out_ns = (
        orders[run.truth.stock_initial - 1].ts_ms * 1_000_000
        if len(orders) >= run.truth.stock_initial
        else run.truth.read_at_ns
    )
    expected = {
        r.op_id
        for r in h[h["code"].eq("sold_out")].itertuples()
        if any(r.complete_ns < invoke for invoke in oks["invoke_ns"])
        or r.complete_ns < log_sold_out_ns
    }
    assert check(run)["premature_sold_out"].count == len(expected) > 0


def test_undersold_counts_units_left_and_shoppers_who_gave_up(tmp_path: Path) -> None:
    write_synthetic(tmp_path, _spec({"undersold": 5}))
    run = load_run(tmp_path)
    result = check(run)["undersold"]
    winners = {o.user_id for o in run.truth.orders}
    gave_up = set(run.history["user_id"]) - winners
    assert result.count == 5 == run.truth.stock_initial - len(run.truth.orders)
    assert result.figures == {"gave_up": len(gave_up)} and len(gave_up) > 0
    assert set(result.examples) <= gave_up
    first = run.history.sort_values("shopper").drop_duplicates("user_id")
    assert result.examples[0] == first.loc[first["user_id"].isin(gave_up), "user_id"].iloc[0]


def test_units_nobody_wanted_are_not_undersold(tmp_path: Path) -> None:
    write_synthetic(tmp_path, SyntheticSpec(shoppers=50, stock=100, busy_p=0.0))
    result = check(load_run(tmp_path))["undersold"]
    assert result.ok and result.count == 0 and result.figures == {"gave_up": 0}
    assert result.detail.startswith("50 units left unsold; 0 of 50")


# --- the registry and check-safe ---------------------------------------------------------------------


def test_registry_entries_declare_their_behaviour() -> None:
    from flashlab.analysis.checks import CHECKS

    assert list(LOADED_CHECKS) == list(CHECKS)
    for name, c in LOADED_CHECKS.items():
        assert c.name == name and c.description and c.clause_class in ("safety", "timing")
    assert CHECK_KEYS["conservation_errors"] == "conservation"
    assert CHECK_KEYS["gave_up"] == "undersold"
    assert "server_errors" not in CHECK_KEYS.values()  # no clause key: server_error_rate is


def test_a_check_that_raises_is_unknown_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: object, run: object) -> None:
        raise KeyError("column 'remaining' vanished")

    monkeypatch.setattr(type(LOADED_CHECKS["negative_stock"]), "run", boom)
    write_synthetic(tmp_path, _spec({}))
    results = check(load_run(tmp_path))
    broken = results["negative_stock"]
    assert broken.ok is None and broken.count is None
    assert broken.detail.startswith("could not run: KeyError")
    assert all(r.ok for n, r in results.items() if n != "negative_stock")


def test_vocabulary_summary_report_and_junit_follow_the_registry(tmp_path: Path) -> None:
    from markupsafe import escape

    from flashlab.analysis.hypothesis import SUMMARY_KEYS
    from flashlab.analysis.hypothesis import parse_clause
    from flashlab.analysis.junit import run_suite
    from flashlab.analysis.report import render_report
    from flashlab.analysis.summary import summarize

    write_synthetic(tmp_path, _spec({"undersold": 2}))
    run = load_run(tmp_path)
    summary = summarize(run)
    for c in LOADED_CHECKS.values():
        for key in c.summary_keys():
            assert SUMMARY_KEYS[key] == () and key in summary, key
            assert parse_clause(f"{key} == 0").key == key
    assert (
        summary["undersold"] == 2
        and summary["gave_up"] == summary["checks"]["undersold"]["figures"]["gave_up"]
    )
    assert summary["failed_checks"] == ["undersold"] and summary["unknown_checks"] == []
    html = render_report(run, summary)
    for name, c in LOADED_CHECKS.items():
        assert f"<code>{name}</code>" in html and str(escape(c.description)) in html
    rows = [c.report_row for c in LOADED_CHECKS.values() if c.report_row]
    assert (
        "undersold: units left / shoppers who gave up" in rows
    )  # a key number declared by its check
    alerted = re.findall(r'<div class="card alert">\s*<div class="label">([^<]*)</div>', html)
    assert alerted == [
        str(escape(LOADED_CHECKS["undersold"].report_row))
    ]  # the one failed check's card
    for row in rows:
        assert f'<div class="label">{escape(row)}</div>' in html, row
    cases = [case for case in run_suite(summary, "x").cases if case.classname == "x.checks"]
    assert [case.name for case in cases] == list(LOADED_CHECKS)
