"""What an engine is: the interface (LoadPlan in, EngineResult out) and the Collector all share.

The driver-side Collector forwards history batches, merges progress, and turns a lost worker's
unfinished shoppers into `info` rows so no attempt silently disappears.
"""

from __future__ import annotations

import resource
import threading
import time
from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pyarrow as pa

from flashlab.core.isolation import pinned
from flashlab.core.target import TargetRequest
from flashlab.simulator import loopmon
from flashlab.simulator.history import Op
from flashlab.simulator.history import ops_to_batch
from flashlab.simulator.history import plan_op
from flashlab.simulator.progress import Progress
from flashlab.simulator.scenario import Scenario
from flashlab.simulator.schedule import ShopperPlan
from flashlab.simulator.schedule import VuPlan
from flashlab.simulator.schedule import partition
from flashlab.simulator.schedule import partition_vus
from flashlab.simulator.schedule import plan
from flashlab.simulator.schedule import vu_plan
from flashlab.simulator.shopper import DriveSpec
from flashlab.simulator.shopper import Shipment

WORKER_LOST = "worker lost"
START_LEAD_S = 0.2  # t0 is set this far ahead so every worker starts on the same clock
PROGRESS_EVERY_S = 0.1

OnBatch = Callable[[pa.RecordBatch], None]
OnProgress = Callable[[Progress], None]
OnStart = Callable[[int], None]


@dataclass
class LoadPlan:
    run_id: str
    base_url: str
    product_id: str
    scenario: Scenario
    seed: int = 1
    client: str = "aiohttp"  # "aiohttp" | "httpx"
    workers: int = 1
    connections: int = 256  # per worker
    ray_address: str | None = None
    tmp_dir: str | None = None  # engine scratch (Ray session files); a temp dir when None
    cpus: list[int] | None = None  # load CPUs (flashlab.core.isolation); None = not pinned
    queue: bool = False  # the product is a waiting room (strategy `queue`): join, poll, then buy
    target: TargetRequest | None = None  # a backend the lab did not build (flashlab.core.target)

    def spec(self, worker: str) -> DriveSpec:
        return DriveSpec(
            self.run_id,
            self.base_url,
            self.product_id,
            self.scenario,
            self.client,
            self.connections,
            worker,
            self.queue,
            self.target,
        )

    def hard_deadline_s(self) -> float:
        """Seconds after t0 by which every worker must have stopped, or be killed."""
        return self.scenario.duration_s + self.scenario.request_timeout_s + 15.0


@dataclass
class Shares:
    """The seeded schedule split across workers (the same union for any worker count)."""

    shoppers: list[list[ShopperPlan]]
    vus: list[list[VuPlan]]

    @classmethod
    def of(cls, lp: LoadPlan) -> Shares:
        everyone = plan(lp.scenario, lp.seed)
        return cls(
            partition(everyone, lp.workers),
            partition_vus(vu_plan(lp.scenario, lp.seed), lp.workers),
        )

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.shoppers)


@dataclass
class EngineResult:
    engine: str
    client: str
    workers: int
    shoppers: int  # scheduled
    rows: int  # history rows delivered (incl. "worker lost" rows)
    t0_ns: int
    end_ns: int
    wall_s: float  # t0 -> all workers stopped
    cpu_s_workers: float  # user+sys CPU of the load workers (this process for inline)
    cpu_s_driver: float  # user+sys CPU of the driver during the run (0 for inline: included above)
    # engine.run() -> t0: worker spawn, Ray start-up, actors ready. Outside the load window, so
    # throughput and latency never include it.
    startup_s: float = 0.0
    lost_workers: list[int] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    # Load-generator health (flashlab.simulator.loopmon.merge): {workers: {name: stats}, lag_ms_p99,
    # lag_ms_max, stalled_s, cpu_pct_max}; the worst worker's figures, from each final shipment.
    generator: dict[str, Any] = field(default_factory=dict)
    # Where each worker ran (Ray): [{worker, node_id, node_ip, pid, shoppers}], one per actor.
    actors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Engine(ABC):
    """A way to run a LoadPlan. A new engine is one module plus one line in the registry.

    `run` splits the schedule and sets up the Collector; an engine implements `_run`, which drives
    the shares (`collector.shares`, worker `collector.names`) and returns `collector.result(...)`.
    """

    name: str = "?"
    worker_prefix: str = "?"  # worker i is named f"{worker_prefix}-{i}"

    def run(
        self,
        plan: LoadPlan,
        on_batch: OnBatch,
        on_progress: OnProgress | None = None,
        on_start: OnStart | None = None,
        stop: threading.Event | None = None,
    ) -> EngineResult:
        """Drive `plan` to the end, or until `stop` is set (the run's cooperative abort).

        On `stop` every worker stops launching shoppers and cancels its attempts in flight (they
        end as `info` rows, error flashlab.simulator.shopper.ABORTED); everything received so far
        still reaches `on_batch`, and the result comes back as after a normal end.
        """
        shares = self._shares(plan)
        names = [f"{self.worker_prefix}-{i}" for i in range(len(shares.shoppers))]
        collector = Collector(plan, shares, names, on_batch, on_progress, stop)
        # The driver and everything it starts (worker processes, Ray's daemons) inherit the pin;
        # the previous affinity is back when the load is over.
        with pinned(plan.cpus):
            return self._run(plan, collector, on_start)

    def _shares(self, plan: LoadPlan) -> Shares:
        return Shares.of(plan)

    @abstractmethod
    def _run(self, plan: LoadPlan, collector: Collector, on_start: OnStart | None) -> EngineResult:
        """Drive the collector's shares to the end (t0 via `collector.start_clock(on_start)`)."""

    def preflight(self, workers: int, ray_address: str | None) -> None:
        """Cheap checks of the engine's own settings before anything starts (raise UserError).

        Called before the run directory exists, so bad input leaves nothing behind."""
        return None  # most engines have nothing to check

    @abstractmethod
    def kill_worker(self, index: int) -> bool:
        """Kill worker `index` while running (the actor-kill fault); False if there is none."""

    @abstractmethod
    def worker_count(self) -> int: ...


class PoolEngine(Engine):
    """An engine with one handle per worker (process, actor) in `_workers`, guarded by `_lock`."""

    def __init__(self) -> None:
        self._workers: list[Any] = []
        self._lock = threading.Lock()

    def worker_count(self) -> int:
        return len(self._workers)


class Collector:
    """Driver-side bookkeeping for one run."""

    def __init__(
        self,
        lp: LoadPlan,
        shares: Shares,
        names: list[str],
        on_batch: OnBatch,
        on_progress: OnProgress | None,
        stop: threading.Event | None = None,
    ) -> None:
        self.lp, self.shares, self.names = lp, shares, names
        self.on_batch, self.on_progress = on_batch, on_progress
        self.stop = stop if stop is not None else threading.Event()
        n = len(names)
        self.progress = [Progress() for _ in range(n)]
        self.started: list[set[int]] = [set() for _ in range(n)]
        self.done: list[set[int]] = [set() for _ in range(n)]
        self.last_attempt: list[dict[int, int]] = [{} for _ in range(n)]
        self.finished = [False] * n
        self.generator: list[dict[str, Any] | None] = [None] * n  # from each final shipment
        self.lost: list[int] = []
        self.rows = 0
        self.t0_ns = 0
        self.startup_s = 0.0
        self._created = time.monotonic()
        self._last_progress = 0.0

    def ship(self, worker: int, shipment: Shipment) -> None:
        if self.finished[worker]:
            return  # a lost worker's late message: its shoppers are already accounted for
        self.started[worker].update(shipment.started)
        self.done[worker].update(shipment.done)
        self.progress[worker] = shipment.progress
        if shipment.batch is not None and shipment.batch.num_rows:
            self._note_attempts(worker, shipment.batch)
            self.rows += shipment.batch.num_rows
            self.on_batch(shipment.batch)
        if shipment.generator is not None:
            self.generator[worker] = shipment.generator
        if shipment.final:
            self.finished[worker] = True
        self.tick()

    def _note_attempts(self, worker: int, batch: pa.RecordBatch) -> None:
        last = self.last_attempt[worker]
        shoppers = batch.column("shopper").to_pylist()
        attempts = batch.column("attempt").to_pylist()
        for s, a in zip(shoppers, attempts, strict=True):
            if a > last.get(s, 0):
                last[s] = a

    def start_clock(self, on_start: OnStart | None, lead_s: float = START_LEAD_S) -> int:
        """Set t0 `lead_s` from now (see choose_t0); returns the load deadline, t0 + duration."""
        self.startup_s = round(time.monotonic() - self._created, 3)
        self.t0_ns = choose_t0(on_start, lead_s)
        return self.t0_ns + int(self.lp.scenario.duration_s * 1e9)

    def hard_stop_ns(self) -> int:
        """When every worker must have stopped (LoadPlan.hard_deadline_s after t0)."""
        return self.t0_ns + int(self.lp.hard_deadline_s() * 1e9)

    def stop_overdue(
        self, hard_ns: int, workers: Iterable[int], kill: Callable[[int], object]
    ) -> bool:
        """Past `hard_ns`: kill and account every worker in `workers` (stuck past every bound)."""
        if time.time_ns() <= hard_ns:
            return False
        for i in list(workers):
            kill(i)
            self.worker_lost(i)
        return True

    def merged(self) -> Progress:
        total = Progress.merge(self.progress)
        total.workers_lost = len(self.lost)
        return total

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress and (force or now - self._last_progress >= PROGRESS_EVERY_S):
            self._last_progress = now
            self.on_progress(self.merged())

    def worker_lost(self, worker: int) -> int:
        """Record worker `worker` as lost: one `info` row per shopper it had not finished.

        Unfinished = started (as far as the driver heard) or scheduled to have arrived by now,
        minus finished. Its unshipped ops are gone, so any of those shoppers may have bought.
        """
        if self.finished[worker]:
            return 0
        self.finished[worker] = True
        self.lost.append(worker)
        now = time.time_ns()
        ops = [
            self._lost_op(worker, s, now)
            for s in self.shares.shoppers[worker]
            if s.shopper not in self.done[worker] and self._began(worker, s, now)
        ]
        lost_progress = self.progress[worker]
        lost_progress.in_flight = 0
        if ops:
            batch = ops_to_batch(ops)
            self.rows += batch.num_rows
            self.on_batch(batch)
        self.tick(force=True)
        return len(ops)

    def _began(self, worker: int, s: ShopperPlan, now_ns: int) -> bool:
        if s.shopper in self.started[worker]:
            return True
        return s.vu < 0 and self.t0_ns + int(s.arrival_s * 1e9) <= now_ns

    def _lost_op(self, worker: int, s: ShopperPlan, now_ns: int) -> Op:
        attempt = self.last_attempt[worker].get(s.shopper, 0) + 1
        began = min(now_ns, self.t0_ns + int(s.arrival_s * 1e9))
        return plan_op(
            s,
            self.lp.run_id,
            self.names[worker],
            attempt,
            (began, began, now_ns),
            "info",
            0,
            error=WORKER_LOST,
        )

    def result(
        self, engine: str, end_ns: int, cpu_workers: float, cpu_driver: float
    ) -> EngineResult:
        return EngineResult(
            engine=engine,
            client=self.lp.client,
            workers=len(self.names),
            shoppers=self.shares.total,
            rows=self.rows,
            t0_ns=self.t0_ns,
            end_ns=end_ns,
            wall_s=(end_ns - self.t0_ns) / 1e9,
            cpu_s_workers=round(cpu_workers, 3),
            cpu_s_driver=round(cpu_driver, 3),
            startup_s=self.startup_s,
            lost_workers=list(self.lost),
            progress=self.merged().to_dict(),
            generator=loopmon.merge(
                {n: g for n, g in zip(self.names, self.generator, strict=True) if g is not None}
            ),
        )


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def choose_t0(on_start: OnStart | None, lead_s: float = START_LEAD_S) -> int:
    t0 = time.time_ns() + int(lead_s * 1e9)
    if on_start is not None:
        on_start(t0)
    return t0
