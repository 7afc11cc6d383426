"""Driving shoppers inside one event loop, each from its scheduled time to its last attempt.

Launch each at its scheduled time, record one Op per attempt, retry per behaviour, stop hard at
the duration cap, and ship history in batches.

Used by every engine worker (inline, process, ray actor). Timestamps are `time.time_ns()`.
A waiting-room product (strategy `queue`, `DriveSpec.queue`): the shopper first joins the queue
and polls it (`POST /api/v1/shop/queue`, bounded in count and by the profile's `max_wait_s`, with
a delay that grows with its position), then buys once admitted. Polls are not purchase attempts:
they add no history rows. A shopper that leaves the queue without buying (sold out, patience
spent, a refusal) gets one row with `attempt` 0 and `op_id` "<shopper>:q", type `fail`, saying
why (`code` sold_out / queue_timeout / the refusal's code). Its first purchase attempt keeps
the arrival as `intended_ns`, so the wait in the queue is part of its response time.
A shopper whose admission ran out before its purchase arrived (410 `admission_expired`, or 409
`not_admitted`) rejoins at the back, as a real waiting room lets you (docs/CONTRACT.md: a POST
with an expired ticket takes a new one), and buys again once admitted: that purchase is its next
attempt, its `intended_ns` the moment it rejoined. Rejoining is bounded by the same patience as
the first wait - the profile's max_attempts and max_wait_s since it first queued - and by
QUEUE_MAX_POLLS polls in all (`QueueVisit`). If it leaves the queue then, its `:q` row follows
its purchase rows.

`intended_ns` is when the schedule (arrival + think, or previous answer + backoff) said the attempt
should be sent; `invoke_ns` is when it actually went out (after waiting for a free connection), so
coordinated omission shows up as response time instead of hiding.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from collections.abc import Coroutine
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pyarrow as pa

from flashlab.core.target import TargetRequest
from flashlab.simulator.behaviour import Verdict
from flashlab.simulator.behaviour import classify
from flashlab.simulator.behaviour import next_delay
from flashlab.simulator.behaviour import should_retry
from flashlab.simulator.behaviour import think_s
from flashlab.simulator.client import Answer
from flashlab.simulator.client import ShopperClient
from flashlab.simulator.client import make_client
from flashlab.simulator.gcpolicy import full_gc_deferred
from flashlab.simulator.history import Op
from flashlab.simulator.history import ops_to_batch
from flashlab.simulator.history import plan_op
from flashlab.simulator.loopmon import LoopMonitor
from flashlab.simulator.progress import Progress
from flashlab.simulator.scenario import Profile
from flashlab.simulator.scenario import Scenario
from flashlab.simulator.schedule import ShopperPlan
from flashlab.simulator.schedule import VuPlan

FLUSH_ROWS = 2_000
FLUSH_S = 0.1
CANCELLED = "cancelled at duration cap"
ABORTED = "cancelled: run aborted"  # the run's stop (a guard or Ctrl-C), not the duration cap
STOP_POLL_S = 0.1
QUEUE_MAX_POLLS = 1_000  # per shopper; the profile's max_wait_s bounds the time
# The further back, the slower the poll: 10,000 shoppers polling fast are a load of their own
# (measured: 2 ms per ticket ahead, capped at 2 s, starved a 2-core stack until admissions expired).
QUEUE_POLL_MIN_S = 0.2
QUEUE_POLL_MAX_S = 5.0
QUEUE_POLL_PER_POSITION_S = 0.005
QUEUE_TIMEOUT = "queue_timeout"
QUEUE_RETRY = frozenset({"rate_limited", "backend_unavailable", "timeout", "connection", "gateway"})
# Purchase answers that send a patient shopper back to the end of the waiting room.
QUEUE_REJOIN = frozenset({"admission_expired", "not_admitted"})


@dataclass
class QueueVisit:
    """One shopper's time in the waiting room, across rejoins: the patience deadline (max_wait_s
    after it first queued) and the polls it has left (QUEUE_MAX_POLLS in all)."""

    joined_ns: int
    deadline_ns: int
    polls_left: int = QUEUE_MAX_POLLS

    @classmethod
    def start(cls, joined_ns: int, profile: Profile) -> QueueVisit:
        return cls(joined_ns, joined_ns + int(profile.max_wait_s * 1e9))


@dataclass(frozen=True)
class DriveSpec:
    """What one worker needs to drive its share (picklable: crosses process/actor boundaries)."""

    run_id: str
    base_url: str
    product_id: str
    scenario: Scenario
    client: str = "aiohttp"
    connections: int = 256
    worker: str = "w0"
    queue: bool = False  # waiting room: join and poll the queue before buying
    target: TargetRequest | None = None  # a backend the lab did not build: its request, its rules


@dataclass
class Shipment:
    """One flush from a worker: new history rows, shoppers started/finished since the last, counters."""

    batch: pa.RecordBatch | None
    started: list[int]
    done: list[int]
    progress: Progress
    final: bool = False
    generator: dict[str, Any] | None = None  # the worker's LoopMonitor stats, on the final shipment


@dataclass
class Recorder:
    """Buffers ops and hands them over every FLUSH_S or FLUSH_ROWS, with live counters."""

    on_ship: Callable[[Shipment], None]
    progress: Progress = field(default_factory=Progress)
    _ops: list[Op] = field(default_factory=list)
    _started: list[int] = field(default_factory=list)
    _done: list[int] = field(default_factory=list)

    def start(self, shopper: int) -> None:
        self.progress.launched += 1
        self._started.append(shopper)

    def finish(self, shopper: int) -> None:
        self.progress.done += 1
        self._done.append(shopper)

    def add(self, op: Op, answer: Answer) -> None:
        p = self.progress
        p.attempts += 1
        p.count(answer.code or answer.failure or f"http_{op.status}")
        if op.type == "ok":
            p.ok += 1
            p.saw_remaining(op.remaining)
        elif op.code == "sold_out":
            p.sold_seen += 1
        self._ops.append(op)
        if len(self._ops) >= FLUSH_ROWS:
            self.flush()

    def flush(self, final: bool = False, generator: dict[str, Any] | None = None) -> None:
        batch = ops_to_batch(self._ops) if self._ops else None
        shipment = Shipment(
            batch, self._started, self._done, self.progress.copy(), final, generator
        )
        self._ops, self._started, self._done = [], [], []
        self.on_ship(shipment)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            self.flush()


def _verdict(answer: Answer) -> Verdict:
    """What an answer means: the client's own reading (a target's rules), else the table."""
    if answer.verdict is not None:
        return answer.verdict
    return classify(answer.status, answer.code, answer.failure, answer.maybe_committed)


async def _sleep_until(ns: int) -> None:
    delay = (ns - time.time_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


class _Driver:
    """One worker's shoppers on one loop. Construct and run inside the loop (`drive`)."""

    def __init__(
        self, spec: DriveSpec, client: ShopperClient, recorder: Recorder, t0_ns: int
    ) -> None:
        self.spec = spec
        self.client = client
        self.rec = recorder
        self.t0_ns = t0_ns
        self.profiles: dict[str, Profile] = {p.name: p for p in spec.scenario.profiles}
        # In-flight requests are bounded by the connection pool; schedules are not (open model).
        self.sem = asyncio.Semaphore(spec.connections)
        # Waiting-room polls may hold at most half the pool: a 10k-shopper queue's joins would
        # otherwise sit ahead of the admitted shoppers' purchases until their admissions expire.
        self.poll_sem = asyncio.Semaphore(max(1, spec.connections // 2))
        self.tasks: set[asyncio.Task[None]] = set()
        self.cancel_reason = CANCELLED  # what an attempt cut short records as its error

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _op(self, s: ShopperPlan, attempt: int, times: tuple[int, int, int], answer: Answer) -> Op:
        verdict = _verdict(answer)
        return plan_op(
            s,
            self.spec.run_id,
            self.spec.worker,
            attempt,
            times,
            verdict.type,
            answer.status,
            code=answer.code,
            order_id=answer.order_id,
            remaining=answer.remaining,
            error=answer.error,
        )

    async def _attempt(self, s: ShopperPlan, attempt: int, intended_ns: int) -> tuple[Op, Answer]:
        async with self.sem:
            invoke_ns = time.time_ns()
            self.rec.progress.in_flight += 1
            try:
                answer = await self.client.buy(s.user_id, attempt)
            except asyncio.CancelledError:
                # Sent and never answered: indeterminate, and it must be in the history.
                answer = Answer(0, failure="cancelled", error=self.cancel_reason)
                op = self._op(s, attempt, (intended_ns, invoke_ns, time.time_ns()), answer)
                self.rec.add(op, answer)
                raise
            finally:
                self.rec.progress.in_flight -= 1
        op = self._op(s, attempt, (intended_ns, invoke_ns, time.time_ns()), answer)
        self.rec.add(op, answer)
        return op, answer

    async def _poll(self, user_id: str) -> Answer:
        async with self.poll_sem, self.sem:
            self.rec.progress.in_flight += 1
            try:
                return await self.client.queue(user_id)
            finally:
                self.rec.progress.in_flight -= 1
                self.rec.progress.queue_polls += 1

    def _left_queue(self, s: ShopperPlan, start_ns: int, answer: Answer, why: str) -> None:
        """The one row of a shopper that leaves the waiting room without buying."""
        now = time.time_ns()
        code = answer.code if answer.status not in (0, 200) else why
        position = answer.queue.position if answer.queue else None
        op = plan_op(
            s,
            self.spec.run_id,
            self.spec.worker,
            0,
            (start_ns, start_ns, now),
            "fail",
            answer.status if answer.status != 200 else 0,
            op_id=f"{s.shopper}:q",
            code=code,
            error=answer.error or f"left the queue: {why} (position {position})",
        )
        self.rec.add(op, answer)

    async def queue_wait(self, s: ShopperPlan, start_ns: int, visit: QueueVisit) -> bool:
        """Join (or rejoin) the waiting room and poll until admitted (True) or leaving it (False,
        recorded), within the visit's deadline and polls."""
        # The first wait draws as it always did; a rejoin draws a stream of its own.
        rng = random.Random(s.rng_seed ^ 0x51 ^ (QUEUE_MAX_POLLS - visit.polls_left))
        joined_ns = visit.joined_ns
        answer = Answer(0)
        while visit.polls_left > 0:
            visit.polls_left -= 1
            await _sleep_until(start_ns)
            answer = await self._poll(s.user_id)
            ticket = answer.queue
            if ticket is not None and ticket.state in ("admitted", "purchased"):
                return True
            if ticket is None:
                verdict = classify(
                    answer.status, answer.code, answer.failure, answer.maybe_committed
                )
                if verdict.retry_key not in QUEUE_RETRY:
                    self._left_queue(s, joined_ns, answer, answer.code or "refused")
                    return False
            ahead = (ticket.position or 0) if ticket else 0
            delay = min(QUEUE_POLL_MAX_S, max(QUEUE_POLL_MIN_S, ahead * QUEUE_POLL_PER_POSITION_S))
            delay = max(delay * rng.uniform(0.75, 1.25), answer.retry_after_s or 0.0)
            start_ns = max(start_ns, time.time_ns()) + int(delay * 1e9)
            if start_ns > visit.deadline_ns:
                break
        self._left_queue(s, joined_ns, answer, QUEUE_TIMEOUT)
        return False

    def _rejoins(self, answer: Answer, profile: Profile, attempt: int, visit: QueueVisit) -> bool:
        """Back to the end of the waiting room: an admission that ran out, patience left."""
        return (
            self.spec.queue
            and answer.code in QUEUE_REJOIN
            and attempt < profile.max_attempts
            and visit.polls_left > 0
            and time.time_ns() < visit.deadline_ns
        )

    async def shopper(self, s: ShopperPlan, arrival_ns: int) -> None:
        profile = self.profiles[s.profile]
        rng = random.Random(s.rng_seed)
        self.rec.start(s.shopper)
        intended_ns = arrival_ns + int(think_s(profile, rng) * 1e9)
        attempt = 1
        visit = QueueVisit.start(intended_ns, profile)
        try:
            if self.spec.queue and not await self.queue_wait(s, intended_ns, visit):
                return
            while True:
                await _sleep_until(intended_ns)
                op, answer = await self._attempt(s, attempt, intended_ns)
                if self._rejoins(answer, profile, attempt, visit):
                    if not await self.queue_wait(s, op.complete_ns, visit):
                        return
                    intended_ns, attempt = op.complete_ns, attempt + 1
                    continue
                verdict = _verdict(answer)
                delay = next_delay(
                    profile, attempt, rng, answer.retry_after_s, verdict.retry_key == "rate_limited"
                )
                elapsed = (op.complete_ns - arrival_ns) / 1e9
                if not should_retry(profile, verdict, attempt, elapsed, delay):
                    return
                intended_ns = op.complete_ns + int(delay * 1e9)
                attempt += 1
        finally:
            self.rec.finish(s.shopper)

    async def run_open(self, shoppers: list[ShopperPlan]) -> None:
        for s in shoppers:  # sorted by arrival
            due_ns = self.t0_ns + int(s.arrival_s * 1e9)
            await _sleep_until(due_ns)
            self._spawn(self.shopper(s, due_ns))
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    async def _vu(self, vu: VuPlan, shoppers: list[ShopperPlan]) -> None:
        rng = random.Random(vu.rng_seed)
        lo, hi = self.spec.scenario.vu_think_s
        for s in shoppers:
            now_s = (time.time_ns() - self.t0_ns) / 1e9
            window = next(((a, b) for a, b in vu.intervals if b > now_s), None)
            if window is None:
                return  # ramped down for good
            await _sleep_until(self.t0_ns + int(window[0] * 1e9))
            await self.shopper(s, time.time_ns())
            await asyncio.sleep(rng.uniform(lo, hi) if hi > lo else lo)

    async def run_closed(self, vus: list[VuPlan], shoppers: list[ShopperPlan]) -> None:
        by_id = {s.shopper: s for s in shoppers}
        for vu in vus:
            self._spawn(self._vu(vu, [by_id[i] for i in vu.shoppers if i in by_id]))
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


async def _until_done(
    main: asyncio.Future[Any], deadline_ns: int, should_stop: Callable[[], bool] | None
) -> None:
    """Wait for `main` until the deadline, checking `should_stop` every STOP_POLL_S."""
    while not main.done():
        left = (deadline_ns - time.time_ns()) / 1e9
        if left <= 0 or (should_stop is not None and should_stop()):
            return
        step = left if should_stop is None else min(left, STOP_POLL_S)
        await asyncio.wait({main}, timeout=step)


async def drive(
    spec: DriveSpec,
    shoppers: list[ShopperPlan],
    t0_ns: int,
    deadline_ns: int,
    on_ship: Callable[[Shipment], None],
    vus: list[VuPlan] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Progress:
    """Run `shoppers` (this worker's share) from t0 until they finish or `deadline_ns` passes,
    or `should_stop()` (polled every STOP_POLL_S) turns True: the run's cooperative abort.

    Either way the ending is the same: attempts in flight end as `info` rows (error CANCELLED or
    ABORTED), shoppers waiting between attempts or not yet arrived are not recorded.
    Returns the final counters; the last Shipment has `final=True` and carries this worker's
    load-generator health (flashlab.simulator.loopmon: event-loop lag and CPU, sampled while it ran).
    """
    scenario = spec.scenario
    client = make_client(
        spec.client,
        spec.base_url,
        spec.product_id,
        spec.connections,
        scenario.request_timeout_s,
        spec.target,
    )
    recorder = Recorder(on_ship)
    driver = _Driver(spec, client, recorder, t0_ns)
    async with full_gc_deferred():  # a full collection would stall every shopper (gcpolicy)
        monitor = LoopMonitor().start()
        ticker = asyncio.ensure_future(recorder.ticker())
        if scenario.model == "closed":
            main = asyncio.ensure_future(driver.run_closed(vus or [], shoppers))
        else:
            main = asyncio.ensure_future(driver.run_open(shoppers))
        try:
            await _until_done(main, deadline_ns, should_stop)
            if should_stop is not None and should_stop():
                driver.cancel_reason = ABORTED
        finally:
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
            await driver.stop()  # duration cap: in-flight attempts end as `info`
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            generator = await monitor.stop()
            await client.close()
            recorder.flush(final=True, generator=generator)
    if not main.cancelled() and (error := main.exception()) is not None:
        raise error  # a bug in the driver, not a load outcome: do not hide it
    return recorder.progress
