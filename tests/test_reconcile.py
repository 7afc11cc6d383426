"""Reconciliation of client history vs server Prometheus counters vs Redis truth."""

from __future__ import annotations

import json
from pathlib import Path

from flashlab.analysis.reconcile import counter_total
from flashlab.analysis.reconcile import reconcile
from flashlab.core.rundir import METRICS
from flashlab.core.rundir import load_run
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import metrics_text
from flashlab.testing.synthetic import write_synthetic


def _reconcile(tmp_path: Path, **spec: object) -> dict:
    write_synthetic(tmp_path, SyntheticSpec(**spec))  # type: ignore[arg-type]
    return reconcile(load_run(tmp_path))


def test_clean_run_reconciles(tmp_path: Path) -> None:
    r = _reconcile(tmp_path)
    assert r["ok"] and r["mismatches"] == []
    assert (
        r["client_ok"]
        == r["server_purchases"]
        == r["redis_orders"]
        == r["server_ok_answers"]
        == 100
    )
    assert r["server_baseline"] == "pre-load scrape"


def test_server_counting_more_than_acknowledged_is_flagged(tmp_path: Path) -> None:
    r = _reconcile(tmp_path, plant={"server_overcount": 5})
    assert not r["ok"]
    assert r["server_purchases"] == r["client_ok"] + 5
    assert any(m.startswith("server_purchases - client_ok = +5") for m in r["mismatches"])
    assert any(m.startswith("server_purchases - redis_orders = +5") for m in r["mismatches"])


def test_indeterminate_ops_explain_the_difference(tmp_path: Path) -> None:
    r = _reconcile(tmp_path, plant={"indeterminate": 3})
    assert r["ok"], r["mismatches"]
    assert r["indeterminate"] == 3
    assert r["redis_orders"] - r["client_ok"] == 3


def test_lost_writes_are_flagged(tmp_path: Path) -> None:
    r = _reconcile(tmp_path, plant={"lost_acknowledged": 2})
    assert not r["ok"]
    assert any(m.startswith("redis_orders - client_ok = -2") for m in r["mismatches"])


def test_without_metrics_only_client_and_redis_are_compared(tmp_path: Path) -> None:
    r = _reconcile(tmp_path, metrics=False)
    assert r["ok"] and r["server_purchases"] is None and r["scrapes"] == 0


def test_unreadable_metrics_are_treated_as_absent(tmp_path: Path) -> None:
    write_synthetic(tmp_path, SyntheticSpec())
    (tmp_path / METRICS).write_text("{not json")
    r = reconcile(load_run(tmp_path))
    assert r["server_purchases"] is None and r["ok"]


def test_counter_baseline_is_zero_without_a_pre_load_scrape(tmp_path: Path) -> None:
    write_synthetic(tmp_path, SyntheticSpec())
    scrapes = json.loads((tmp_path / METRICS).read_text())[1:]  # drop the pre-load scrape
    (tmp_path / METRICS).write_text(json.dumps(scrapes))
    r = reconcile(load_run(tmp_path))
    assert r["server_baseline"] == "zero" and r["server_purchases"] == 100 and r["ok"]


def test_counter_parsing_filters_labels() -> None:
    two = metrics_text("lua", 7, 4).replace(
        "# HELP flashlab_http",
        'flashlab_purchases_total{strategy="lock"} 2.0\n# HELP flashlab_http',
    )
    assert counter_total(two, "flashlab_purchases") == 9.0
    assert counter_total(two, "flashlab_purchases", {"strategy": "lock"}) == 2.0
    assert counter_total(metrics_text("lua", 7, 4), "flashlab_purchases") == 7.0
    assert (
        counter_total(metrics_text("lua", 7, 4), "flashlab_purchases", {"strategy": "lock"}) == 0.0
    )
    assert counter_total(metrics_text("lua", 7, 4), "flashlab_nothing") is None


def test_counter_parsing_reads_a_real_prometheus_exposition() -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client import Counter
    from prometheus_client import generate_latest

    registry = CollectorRegistry()
    purchases = Counter("flashlab_purchases_total", "Units sold", ["strategy"], registry=registry)
    purchases.labels("lua").inc(41)
    purchases.labels("lock").inc(1)
    text = generate_latest(registry).decode()
    assert counter_total(text, "flashlab_purchases") == 42.0  # _created samples are ignored
    assert counter_total(text, "flashlab_purchases", {"strategy": "lua"}) == 41.0
