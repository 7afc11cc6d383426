"""The API's Prometheus metrics, their per-request recording, and /metrics exposition across workers.

Multi-worker: when PROMETHEUS_MULTIPROC_DIR is set (before this module is imported — the
supervisor sets it in each worker's environment) prometheus_client writes every sample to
per-process mmap files in that directory and /metrics aggregates all of them, so any worker
answers for the whole stack. Unset, the default in-process registry is exposed.

`flashlab_stock` uses multiprocess_mode="mostrecent": stock is one global value that each worker
observes at different times. "sum" would count it once per worker; "max" would report the
stalest (highest) observation because stock only falls during a sale; the most recent
observation from any worker is the closest to Redis' truth.
"""

from __future__ import annotations

import os
from typing import Any
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import values
from prometheus_client.multiprocess import MultiProcessCollector

# Compose: API containers have their own PID namespaces, so PID-named mmap files would collide in
# a shared directory. FLASHLAB_METRICS_ID names this worker's files instead, which lets every
# container share one directory and any worker's /metrics answer for the whole stack, exactly as
# on the local platform. (Must happen before the metrics below are created.)
_METRICS_ID = os.environ.get("FLASHLAB_METRICS_ID")
if _METRICS_ID and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: _METRICS_ID)

# 1 ms .. 10 s: a healthy lua buy is ~1 ms, the reference's lock (docs/REFERENCE.md) under load had p95 ~10 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "flashlab_http_requests_total", "HTTP requests answered", ["route", "status", "code"]
)
HTTP_DURATION = Histogram(
    "flashlab_http_request_duration_seconds",
    "Time from request start to response end, by route and answer code",
    ["route", "code"],
    buckets=LATENCY_BUCKETS,
)
PURCHASES = Counter("flashlab_purchases_total", "Units sold (200 answers)", ["strategy"])
CONFLICTS = Counter(
    "flashlab_conflicts_total", "Purchases refused: busy/already_purchased/sold_out", ["reason"]
)
REDIS_ERRORS = Counter("flashlab_redis_errors_total", "Redis failures mapped to 503", ["kind"])
STOCK = Gauge(
    "flashlab_stock", "Units left, as last observed", ["product"], multiprocess_mode="mostrecent"
)

# Label children cached per label tuple: .labels() takes a lock and builds a key each call,
# and the buy path records two or three samples per request.
_children: dict[tuple[str, ...], Any] = {}
_Metric = TypeVar("_Metric", Counter, Histogram, Gauge)


def _child(metric: _Metric, *labels: str) -> _Metric:
    key = (metric._name, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe_request(route: str, status: int, code: str, seconds: float) -> None:
    _child(HTTP_REQUESTS, route, str(status), code).inc()
    _child(HTTP_DURATION, route, code).observe(seconds)


def purchase(strategy: str) -> None:
    _child(PURCHASES, strategy).inc()


def conflict(reason: str) -> None:
    _child(CONFLICTS, reason).inc()


def redis_error(kind: str) -> None:
    _child(REDIS_ERRORS, kind).inc()


def stock(product: str, value: int) -> None:
    _child(STOCK, product).set(value)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text for /metrics: all workers' samples when in multiprocess mode."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
