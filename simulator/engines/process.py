"""The process engine: W `spawn`ed worker processes, each driving its share on its own uvloop loop.

Each worker has its own duplex Pipe to the driver (not one shared Queue): a worker SIGKILLed in the
middle of a write can then only break its own channel, never wedge the others behind a shared lock.
History travels as Arrow IPC bytes; progress rides along with every shipment, and the worker's
load-generator health (flashlab.simulator.loopmon) with its final one. The run's stop reaches the
workers through one shared lock-free byte (a RawValue: a worker SIGKILLed while reading it cannot
leave a lock held), which each worker's drive() polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.connection import wait
from typing import Any
from typing import cast

import pyarrow as pa

from flashlab.simulator.engines.engine import Collector
from flashlab.simulator.engines.engine import EngineResult
from flashlab.simulator.engines.engine import LoadPlan
from flashlab.simulator.engines.engine import OnStart
from flashlab.simulator.engines.engine import PoolEngine
from flashlab.simulator.engines.engine import Shares
from flashlab.simulator.engines.engine import cpu_seconds
from flashlab.simulator.progress import Progress
from flashlab.simulator.schedule import ShopperPlan
from flashlab.simulator.schedule import VuPlan
from flashlab.simulator.shopper import DriveSpec
from flashlab.simulator.shopper import Shipment
from flashlab.simulator.shopper import drive

READY_TIMEOUT_S = 60.0  # spawn + imports; generous for a loaded 2-core machine
POLL_S = 0.1


def batch_to_ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def ipc_to_batch(data: bytes) -> pa.RecordBatch:
    return pa.ipc.open_stream(data).read_next_batch()


def encode_shipment(sh: Shipment) -> tuple[Any, ...]:
    ipc = batch_to_ipc(sh.batch) if sh.batch is not None else None
    return ("ship", ipc, sh.started, sh.done, sh.progress.to_dict(), sh.final, sh.generator)


def _readable(conns: list[Connection], timeout: float) -> list[Connection]:
    """Those of `conns` with a message or EOF to read (wait() returns some of the ones it got)."""
    return cast("list[Connection]", wait(conns, timeout=timeout))


def decode_shipment(msg: tuple[Any, ...]) -> Shipment:
    _, ipc, started, done, progress, final, generator = msg
    batch = ipc_to_batch(ipc) if ipc is not None else None
    return Shipment(batch, started, done, Progress(**progress), final, generator)


# ---- worker side ---------------------------------------------------------------------------------


def _worker_main(
    conn: Connection,
    spec: DriveSpec,
    shoppers: list[ShopperPlan],
    vus: list[VuPlan],
    parent_pid: int,
    stop_flag: Any,
) -> None:
    # The driver owns Ctrl-C and reaps us; a terminal SIGINT to the whole group must not race it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # start-up cost: only this path pays for uvloop
    import uvloop

    conn.send(("ready",))
    if not conn.poll(READY_TIMEOUT_S):
        return
    t0_ns, deadline_ns = conn.recv()

    async def main() -> None:
        async def orphan_watch() -> None:
            while os.getppid() == parent_pid:  # bounded by drive's deadline via cancel below
                await asyncio.sleep(0.5)
            os._exit(3)  # the driver died: stop loading at once

        watch = asyncio.ensure_future(orphan_watch())
        try:
            await drive(
                spec,
                shoppers,
                t0_ns,
                deadline_ns,
                lambda sh: conn.send(encode_shipment(sh)),
                vus,
                lambda: bool(stop_flag.value),
            )
        finally:
            watch.cancel()

    uvloop.run(main())
    conn.send(("end", cpu_seconds()))
    conn.close()


# ---- driver side ---------------------------------------------------------------------------------


class ProcessEngine(PoolEngine):
    name = "process"
    worker_prefix = "proc"
    _stop_flag: Any = None  # the shared stop byte, made in _start

    def kill_worker(self, index: int) -> bool:
        with self._lock:
            if not 0 <= index < len(self._workers) or not self._workers[index].is_alive():
                return False
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._workers[index].pid, signal.SIGKILL)
            return True

    def _start(self, plan: LoadPlan, shares: Shares, names: list[str]) -> list[Connection]:
        ctx = mp.get_context("spawn")
        self._stop_flag = ctx.RawValue("b", 0)
        conns = []
        for i, name in enumerate(names):
            ours, theirs = ctx.Pipe(duplex=True)
            spec = plan.spec(name)
            args = (theirs, spec, shares.shoppers[i], shares.vus[i], os.getpid(), self._stop_flag)
            proc = ctx.Process(target=_worker_main, args=args, name=f"flashlab-{name}", daemon=True)
            proc.start()
            with self._lock:
                self._workers.append(proc)
            theirs.close()  # so the driver sees EOF when the worker dies
            conns.append(ours)
        return conns

    def _await_ready(self, conns: list[Connection]) -> None:
        pending = set(range(len(conns)))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"process engine: workers {sorted(pending)} not ready in time")
            for c in _readable([conns[i] for i in pending], left):
                i = conns.index(c)
                try:
                    c.recv()
                except (EOFError, OSError):
                    raise RuntimeError(f"process engine: worker {i} died while starting") from None
                pending.discard(i)

    def _run(self, plan: LoadPlan, collector: Collector, on_start: OnStart | None) -> EngineResult:
        cpu0 = cpu_seconds()
        cpu_workers = 0.0
        graceful = False
        try:
            conns = self._start(plan, collector.shares, collector.names)
            self._await_ready(conns)
            deadline = collector.start_clock(on_start)
            for c in conns:
                c.send((collector.t0_ns, deadline))
            cpu_workers = self._pump(conns, collector)
            end_ns = time.time_ns()
            graceful = True
        finally:
            self._reap(graceful)
        return collector.result(self.name, end_ns, cpu_workers, cpu_seconds() - cpu0)

    def _pump(self, conns: list[Connection], collector: Collector) -> float:
        """Receive until every worker ended or was lost; returns the workers' CPU seconds."""
        hard = collector.hard_stop_ns()
        open_ = {i: c for i, c in enumerate(conns)}
        cpu = 0.0
        while open_:
            if collector.stop_overdue(hard, open_, self.kill_worker):
                break
            if collector.stop.is_set() and not self._stop_flag.value:
                self._stop_flag.value = 1  # every worker's drive() sees it within STOP_POLL_S
            for c in _readable(list(open_.values()), POLL_S):
                i = conns.index(c)
                try:
                    msg = c.recv()
                except (EOFError, OSError):
                    collector.worker_lost(i)  # no-op if it had already shipped its final batch
                    del open_[i]
                    continue
                if msg[0] == "ship":
                    collector.ship(i, decode_shipment(msg))
                elif msg[0] == "end":
                    cpu += msg[1]
            collector.tick()
        collector.tick(force=True)
        return cpu

    def _reap(self, graceful: bool) -> None:
        """Every worker we spawned is gone when run() returns, on success, error or Ctrl-C."""
        with self._lock:
            procs = list(self._workers)
        for p in procs:
            p.join(timeout=5 if graceful else 0)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
