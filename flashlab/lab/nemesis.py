"""The nemesis: the fault scheduler in a Ray actor on the node that runs the stack.

With `engine.kind: ray` and `engine.ray_address` (an attached cluster) an experiment's faults are
injected by `NemesisActor`, placed by the custom resource `flashlab_stack` (start the stack's node
with `ray start --resources '{"flashlab_stack": 1}'`), so a stack on another machine is faulted
where it lives. Locally (no ray_address) the scheduler stays in the lab's own process.

The actor sees the stack through `flashlab.system.platforms.node_view.NodeView` (PIDs and ports
on its node, no ownership), so only faults that act by signal or through the fault proxy run
there; the restart faults (which need the process that owns the stack) and actor-kill (which
needs the engine) are refused as bad input before anything starts. The steady-state gate stays
in the driver, which watches the load: it answers the actor just before the first fault is due.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

from flashlab.core.errors import UserError
from flashlab.core.platform import ComponentNotRunning
from flashlab.core.platform import StackInfo

STACK_RESOURCE = "flashlab_stack"
GATE_WAIT_S = 30.0  # the actor's bound on waiting for the driver's steady-state answer
CALL_TIMEOUT_S = 120.0  # bound on any call to the actor (stop may restart nothing, but waits)
NOT_ON_NEMESIS = {"actor-kill": "needs the load engine, which the driver holds"}


def wants_nemesis(exp: Any) -> bool:
    """Faults on an attached Ray cluster go to the nemesis; everything else stays in-process."""
    return bool(exp.faults) and exp.engine.kind == "ray" and exp.engine.ray_address is not None


def check_faults(specs: list[Any]) -> None:
    """Refuse (exit 2) faults the nemesis cannot inject, naming the schedule entry."""
    # start-up cost: only this path pays for redis, httpx, aiohttp
    from flashlab.chaos.faults import fault_class
    from flashlab.chaos.faults.fault import StopStartFault

    for i, spec in enumerate(specs):
        why = NOT_ON_NEMESIS.get(spec.fault)
        if why is None and issubclass(fault_class(spec.fault), StopStartFault):
            why = "restarts a component, which needs the process that owns the stack"
        if why:
            raise UserError(
                f"faults.{i}.fault: {spec.fault} cannot run on the Ray nemesis ({why}); "
                "drop engine.ray_address to inject it from the lab's own process"
            )


def require_stack_resource(ray: Any, address: str) -> None:
    """One line and exit 2 when no node of the cluster offers the stack resource."""
    if ray.cluster_resources().get(STACK_RESOURCE, 0) < 1:
        raise UserError(
            f"engine.ray_address: the Ray cluster at {address} has no node with resource "
            f"{STACK_RESOURCE!r}, which the nemesis needs to inject faults where the stack runs "
            f"(start that node with: ray start --resources '{{\"{STACK_RESOURCE}\": 1}}')"
        )


class NemesisActor:
    """The FaultScheduler, in a Ray actor on the stack's node. Rows name this node."""

    def __init__(self, specs: list[dict[str, Any]], info: dict[str, Any]) -> None:
        # start-up cost: only this path pays for ray (an optional extra), uvloop, pydantic
        import ray

        from flashlab.chaos.spec import FaultSpec

        self.node_id = ray.get_runtime_context().get_node_id()
        self.specs = [FaultSpec.model_validate(s) for s in specs]
        self.stack = StackInfo.from_dict(info)
        self.scheduler: Any = None
        self._answer = threading.Event()
        self._ok = False

    def where(self) -> dict[str, Any]:
        # start-up cost: only this path pays for ray (an optional extra), uvloop, yaml
        import ray

        return {
            "node_id": self.node_id,
            "node_ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
        }

    def start(self, t0_ns: int, gated: bool) -> None:
        # start-up cost: only this path pays for pandas, pyarrow, numpy
        from flashlab.chaos.scheduler import FaultScheduler
        from flashlab.system.platforms.node_view import NodeView

        self.scheduler = FaultScheduler.for_run(
            self.specs,
            NodeView(self.stack),
            self.stack,
            None,
            t0_ns,
            gate=self._gate if gated else None,
            node=self.node_id,
        ).start()

    def answer_gate(self, ok: bool) -> None:
        self._ok = ok
        self._answer.set()

    def _gate(self) -> bool:
        return self._answer.wait(GATE_WAIT_S) and self._ok

    def halt(self) -> None:
        if self.scheduler is not None:
            self.scheduler.halt()

    def stop(self, timeout_s: float) -> tuple[list[dict[str, Any]], bool]:
        """Recover everything, then (faults.parquet rows, whether the gate refused)."""
        if self.scheduler is None:
            return [], False
        self.scheduler.stop(timeout_s)
        rows = [occ.row(self.node_id) for occ in self.scheduler.started()]
        return rows, self.scheduler.gated


@contextlib.contextmanager
def attached_ray(address: str) -> Iterator[None]:
    """The driver's connection to the cluster, held across the load and the fault recovery;
    bad input (exit 2) when the cluster has no node with the stack resource.

    The Ray engine uses a connection that is already open (and leaves it to its owner), so the
    nemesis outlives the load until every fault is recovered. An unreachable address is bad input.
    """
    # start-up cost: only this path pays for ray (an optional extra), uvloop, yaml
    import ray

    if ray.is_initialized():  # the caller's own connection (tests start one in-process)
        require_stack_resource(ray, address)
        yield
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            logging_level=logging.ERROR,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"engine.ray_address: cannot attach to {address}: {first}") from None
    try:
        require_stack_resource(ray, address)
        yield
    finally:
        ray.shutdown()


class RayNemesis:
    """Driver side of the nemesis: the FaultScheduler's start/halt/stop/table/gated, remotely."""

    def __init__(self, exp: Any, info: Any) -> None:
        """Place the actor and wait until it runs (before the load: placement may take seconds)."""
        # start-up cost: only this path pays for ray (an optional extra), pandas, pyarrow
        import ray

        from flashlab.chaos.scheduler import expand

        # Ray's typed overloads of remote() leave out the actor option max_concurrency.
        remote = ray.remote(num_cpus=0, resources={STACK_RESOURCE: 0.01}, max_concurrency=4)  # type: ignore[call-overload]
        self._ray = ray
        specs = [f.model_dump(mode="json") for f in exp.faults]
        self.actor = remote(NemesisActor).remote(specs, info.to_dict())
        try:
            self.placed: dict[str, Any] = ray.get(self.actor.where.remote(), timeout=CALL_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            ray.kill(self.actor)
            raise UserError(
                f"engine.ray_address: the nemesis found no room on a {STACK_RESOURCE!r} node "
                f"within {CALL_TIMEOUT_S:.0f}s"
            ) from None
        self.gated = False
        self._rows: list[dict[str, Any]] | None = None
        self._started: Any = None  # the start call's result: its error surfaces at stop()
        self._halt = threading.Event()
        self._first_at_s = expand(exp.faults)[0][0]
        self._t0_ns = 0
        self._gate: Callable[[], bool] | None = None
        self._relay = threading.Thread(target=self._relay_gate, name="nemesis-gate", daemon=True)

    def start(self, t0_ns: int, gate: Callable[[], bool] | None = None) -> RayNemesis:
        """Begin the schedule at t0 (not waited on: this runs inside the engine's start)."""
        self._t0_ns, self._gate = t0_ns, gate
        self._started = self.actor.start.remote(t0_ns, gate is not None)
        if gate is not None:
            self._relay.start()
        return self

    def _relay_gate(self) -> None:
        """At the first fault's time, judge steady state here (the driver sees the load)."""
        due_s = (self._t0_ns + self._first_at_s * 1e9 - time.time_ns()) / 1e9
        if self._halt.wait(max(0.0, due_s)):
            return
        try:
            ok = self._gate is not None and bool(self._gate())
        except Exception:  # a broken check must not inject faults into an unknown state
            ok = False
        with contextlib.suppress(Exception):
            self.actor.answer_gate.remote(ok)

    def halt(self) -> None:
        self._halt.set()
        with contextlib.suppress(Exception):
            self.actor.halt.remote()

    def stop(self, timeout_s: float = CALL_TIMEOUT_S) -> None:
        """Recover every fault on the stack's node, fetch the rows, end the actor. Idempotent."""
        if self._rows is not None:
            return
        self._halt.set()
        try:
            if self._started is not None:
                self._ray.get(self._started, timeout=CALL_TIMEOUT_S)
            rows, gated = self._ray.get(self.actor.stop.remote(timeout_s), timeout=timeout_s + 30)
        except self._ray.exceptions.RayError as exc:
            self._rows = []
            raise ComponentNotRunning(
                f"nemesis on node {self.placed['node_id']} lost: {exc}"
            ) from None
        finally:
            with contextlib.suppress(Exception):
                self._ray.kill(self.actor)
        self._rows, self.gated = rows, gated

    def table(self) -> Any:
        # start-up cost: only this path pays for pandas, pyarrow, numpy
        import pyarrow as pa

        from flashlab.core.rundir import FAULTS_SCHEMA

        return pa.Table.from_pylist(self._rows or [], schema=FAULTS_SCHEMA)
