"""Load-generator health: is this worker's own event loop keeping up?

A starved generator (its loop blocked or late, its CPU saturated) stamps its own delay onto every
timestamp it takes, so a 200 seems to "take" two seconds when the server answered in two
milliseconds. `LoopMonitor` runs beside the shoppers in every engine worker: a task that sleeps
`LAG_INTERVAL_S` and records how late it woke (the loop lag), plus the worker process's CPU
percent (psutil) every `CPU_EVERY_S`. Its `stats()` travel to the driver in the worker's final
shipment; `merge` folds them into EngineResult.generator (manifest["engine"]["generator"]).

Per worker:
- lag_ms_p50 / lag_ms_p99 / lag_ms_max  how late the sampler woke, in ms (0 on an idle loop)
- lag_samples                           samples taken
- stalls                                samples whose lag exceeded STALL_MS
- stalled_s                             sum of those lags: how long the loop was frozen in total
- cpu_pct_avg / cpu_pct_max             process CPU percent (100 = one core), whole run / worst
                                        CPU_EVERY_S interval
Memory is bounded: past MAX_SAMPLES lags, a seeded reservoir keeps the percentiles honest while
max, stalls and stalled_s stay exact.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np
import psutil

LAG_INTERVAL_S = 0.02
STALL_MS = 100.0  # a lag this long is a stall: every request in flight gained that much
CPU_EVERY_S = 0.5
MIN_CPU_INTERVAL_S = 0.05  # the final CPU sample counts only if its interval is this long
MAX_SAMPLES = 65_536  # ~22 min of 20 ms samples; beyond that, reservoir sampling

WORKER_KEYS = (
    "lag_ms_p50",
    "lag_ms_p99",
    "lag_ms_max",
    "lag_samples",
    "stalls",
    "stalled_s",
    "cpu_pct_avg",
    "cpu_pct_max",
)


def percentile(values: list[float], q: float) -> float | None:
    """numpy's (linear-interpolation) percentile, as every percentile in the lab; None if empty."""
    return float(np.percentile(values, q)) if values else None


@dataclass(eq=False)
class LoopMonitor:
    """Samples the running loop's lag and this process's CPU until `stop()`. Start inside the loop."""

    interval_s: float = LAG_INTERVAL_S
    stall_ms: float = STALL_MS
    cpu_every_s: float = CPU_EVERY_S
    max_samples: int = MAX_SAMPLES
    # What the sampler has seen so far (never passed in).
    lags_ms: list[float] = field(default_factory=list, init=False)
    samples: int = field(default=0, init=False)
    lag_max_ms: float = field(default=0.0, init=False)
    stalls: int = field(default=0, init=False)
    stalled_s: float = field(default=0.0, init=False)
    cpu_samples: list[float] = field(default_factory=list, init=False)
    _rng: random.Random = field(default_factory=lambda: random.Random(0), init=False, repr=False)
    _proc: psutil.Process = field(default_factory=psutil.Process, init=False, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _wall0: float = field(default=0.0, init=False, repr=False)
    _cpu0: float = field(default=0.0, init=False, repr=False)
    _last_cpu_at: float = field(default=0.0, init=False, repr=False)
    _result: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def _cpu_s(self) -> float:
        t = self._proc.cpu_times()
        return t.user + t.system

    def start(self) -> LoopMonitor:
        self._wall0 = self._last_cpu_at = time.perf_counter()
        self._cpu0 = self._cpu_s()
        self._proc.cpu_percent(None)  # primes psutil's per-interval counter
        self._task = asyncio.ensure_future(self._run())
        return self

    def add_lag(self, lag_ms: float) -> None:
        self.samples += 1
        self.lag_max_ms = max(self.lag_max_ms, lag_ms)
        if lag_ms > self.stall_ms:
            self.stalls += 1
            self.stalled_s += lag_ms / 1000.0
        if len(self.lags_ms) < self.max_samples:
            self.lags_ms.append(lag_ms)
        else:  # reservoir sampling (Algorithm R): every sample equally likely to be kept
            j = self._rng.randrange(self.samples)
            if j < self.max_samples:
                self.lags_ms[j] = lag_ms

    def _sample_cpu(self, now: float, min_interval_s: float) -> None:
        if now - self._last_cpu_at >= min_interval_s:
            self.cpu_samples.append(self._proc.cpu_percent(None))
            self._last_cpu_at = now

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            now = time.perf_counter()
            self.add_lag(max(0.0, now - before - self.interval_s) * 1000.0)
            self._sample_cpu(now, self.cpu_every_s)

    async def stop(self) -> dict[str, Any]:
        """Cancel the sampler and return this worker's stats (idempotent)."""
        if self._result is not None:
            return self._result
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        now = time.perf_counter()
        self._sample_cpu(now, MIN_CPU_INTERVAL_S)
        wall = now - self._wall0
        cpu_avg = 100.0 * (self._cpu_s() - self._cpu0) / wall if wall > 0 else None
        self._result = self.stats(cpu_avg)
        return self._result

    def stats(self, cpu_pct_avg: float | None = None) -> dict[str, Any]:
        ordered = sorted(self.lags_ms)
        cpu_max = max(self.cpu_samples) if self.cpu_samples else cpu_pct_avg

        def r(x: float | None, digits: int = 3) -> float | None:
            return None if x is None else round(x, digits)

        return {
            "lag_ms_p50": r(percentile(ordered, 50)),
            "lag_ms_p99": r(percentile(ordered, 99)),
            "lag_ms_max": r(self.lag_max_ms) if self.samples else None,
            "lag_samples": self.samples,
            "stalls": self.stalls,
            "stalled_s": round(self.stalled_s, 4),
            "cpu_pct_avg": r(cpu_pct_avg, 1),
            "cpu_pct_max": r(cpu_max, 1),
        }


def merge(workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """EngineResult.generator: per-worker stats plus the worst worker's figures.

    Workers run in parallel and each stamps only its own requests, so the run is as trustworthy as
    its worst worker: the headline numbers are maxima over workers, not sums or blends (a lost
    worker that never reported is simply absent). None when no worker reported.
    """

    def worst(key: str) -> float | None:
        values = [w[key] for w in workers.values() if w.get(key) is not None]
        return max(values) if values else None

    return {
        "workers": {name: dict(stats) for name, stats in workers.items()},
        "lag_ms_p99": worst("lag_ms_p99"),
        "lag_ms_max": worst("lag_ms_max"),
        "stalled_s": worst("stalled_s"),
        "cpu_pct_max": worst("cpu_pct_max"),
    }
