"""Reconciliation of three counts of sales: client history (acknowledged ops), server Prometheus counters, Redis truth.

Sources:
- client_ok         distinct order ids of `ok` ops in history.parquet.
- server_purchases  `flashlab_purchases_total` (all label sets summed) from metrics.json: the last
                    scrape minus the last scrape taken before the load started (0 when there is
                    none: the lab starts a fresh stack per run, so counters start at 0).
- redis_orders      orders in truth.json.
Only an indeterminate (`info`) op can make them differ honestly: the server may have committed and
counted a purchase whose answer never reached the client. So, with I = number of info ops:
    0 <= server_purchases - client_ok <= I,  0 <= redis_orders - client_ok <= I,
    |server_purchases - redis_orders| <= I.
Anything else is a mismatch (e.g. a lost write, a double count, or a client that invents 200s).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from flashlab.analysis.checks.check import order_keys
from flashlab.analysis.stats import load_window
from flashlab.core.contract import BUY_PATH
from flashlab.core.rundir import METRICS
from flashlab.core.rundir import Run

PURCHASES_METRIC = "flashlab_purchases"  # family name; the sample is <name>_total
REQUESTS_METRIC = "flashlab_http_requests"


@dataclass(frozen=True)
class Scrape:
    ts_ns: int
    text: str


def load_scrapes(run: Run) -> list[Scrape] | None:
    """Scrapes from metrics.json sorted by time; None if the run has no (readable) metrics.json."""
    path = run.path / METRICS
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        scrapes = [Scrape(int(s["ts_ns"]), str(s["text"])) for s in raw]
        for scrape in scrapes:  # a damaged scrape makes the whole file unreadable, not a crash
            list(text_string_to_metric_families(scrape.text))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    return sorted(scrapes, key=lambda s: s.ts_ns)


def counter_total(text: str, family: str, labels: dict[str, str] | None = None) -> float | None:
    """Sum of `<family>_total` samples whose labels include `labels`; None if the family is absent."""
    found = False
    total = 0.0
    for fam in text_string_to_metric_families(text):
        if fam.name != family:
            continue
        found = True
        for sample in fam.samples:
            if sample.name != f"{family}_total":
                continue
            if labels and any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            total += sample.value
    return total if found else None


def _server_count(
    scrapes: list[Scrape], start_ns: int, family: str, labels: dict[str, str] | None = None
) -> tuple[int | None, str]:
    last = counter_total(scrapes[-1].text, family, labels)
    if last is None:
        return None, "absent"
    before = [s for s in scrapes if s.ts_ns <= start_ns]
    base = counter_total(before[-1].text, family, labels) if before else None
    return round(last - (base or 0.0)), "pre-load scrape" if base is not None else "zero"


def _bounds_problems(client: int, server: int | None, redis: int, info: int) -> list[str]:
    problems: list[str] = []

    def within(name: str, diff: int, low: int, high: int) -> None:
        if not low <= diff <= high:
            problems.append(
                f"{name} = {diff:+d}, outside [{low}, {high}] ({info} indeterminate ops)"
            )

    within("redis_orders - client_ok", redis - client, 0, info)
    if server is not None:
        within("server_purchases - client_ok", server - client, 0, info)
        within("server_purchases - redis_orders", server - redis, -info, info)
    return problems


def reconcile(run: Run) -> dict[str, Any]:
    h = run.history
    # Distinct acknowledged orders, by (order id, user): ids repeat after an empty Redis restart.
    if not run.truth.has("orders"):
        return {"ok": None, "reason": "the truth has no order log (a target that reads none)"}
    client_ok = int(order_keys(h[h["type"].eq("ok")]).nunique())
    info = int(h["type"].eq("info").sum())
    redis_orders = len(run.truth.orders)
    scrapes = load_scrapes(run)
    server = server_ok = None
    baseline = "no metrics.json"
    if scrapes:
        start, _ = load_window(run)
        server, baseline = _server_count(scrapes, start, PURCHASES_METRIC)
        server_ok, _ = _server_count(
            scrapes, start, REQUESTS_METRIC, {"route": BUY_PATH, "code": "ok"}
        )
    mismatches = _bounds_problems(client_ok, server, redis_orders, info)
    return {
        "ok": not mismatches,
        "client_ok": client_ok,
        "server_purchases": server,
        "server_ok_answers": server_ok,  # buy answers with code ok, as the server counted them
        "redis_orders": redis_orders,
        "indeterminate": info,
        "scrapes": len(scrapes or []),
        "server_baseline": baseline,
        "mismatches": mismatches,
    }
