"""`MetricsScraper`: the API's /metrics scraped once a second during a run, kept for reconciliation.

A thread scrapes through nginx while the load runs, once before it (the baseline) and once after
it (the end-of-run counters); flashlab.lab.run writes what it kept to metrics.json, which
flashlab.analysis.reconcile compares with the history.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx


class MetricsScraper:
    """Scrapes the API's /metrics through nginx once a second into memory (for reconciliation)."""

    def __init__(self, base_url: str, interval_s: float = 1.0) -> None:
        self.url = base_url.rstrip("/") + "/metrics"
        self.interval_s = interval_s
        self.scrapes: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)

    def _scrape(self, client: httpx.Client) -> None:
        try:
            resp = client.get(self.url)
        except httpx.HTTPError:
            return  # a fault may have taken nginx down; the gap is itself evidence
        if resp.status_code == 200:
            self.scrapes.append({"ts_ns": time.time_ns(), "text": resp.text})

    def _loop(self) -> None:
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.wait(self.interval_s):
                self._scrape(client)
            self._scrape(client)  # a final scrape after the load, for the end-of-run counters

    def start(self) -> MetricsScraper:
        # One scrape before the load, synchronously: reconciliation takes its counters as the
        # baseline, so a stack that served earlier runs (--target) does not look like it oversold.
        with httpx.Client(timeout=2.0) as client:
            self._scrape(client)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the loop (after its final scrape). Idempotent: also the run's failure cleanup."""
        self._stop.set()
        self._thread.join(timeout=10)

    def evidence(self) -> list[dict[str, Any]]:
        """Stop, then keep the first, the last and every fifth scrape: enough for rates, small."""
        self.stop()
        last = len(self.scrapes) - 1
        return [s for i, s in enumerate(self.scrapes) if i % 5 == 0 or i == last]
