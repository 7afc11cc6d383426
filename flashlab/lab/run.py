"""A run, phase by phase: one experiment in, one complete run directory and a verdict out.

The order of work is the contract of a run directory: manifest.json is written first with
`complete: false`, then history/faults/truth/metrics/summary/report, and `complete: true` last,
so an interrupted or failed run never looks complete. Doing (stack, engine, faults) and judging
(flashlab.analysis.summary, which reads only the directory) stay separate.

The phases' helpers have modules of their own: where load may go (flashlab.lab.remote), run ids
and directories (flashlab.lab.rundirs), the stack (flashlab.lab.stacks), the capacity probe
(flashlab.lab.capacity), the metrics scraper (flashlab.lab.scraper) and the guards
(flashlab.lab.guards).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Collection
from contextlib import ExitStack
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import redis

from flashlab.analysis.capacity import ideal
from flashlab.analysis.summary import summarize
from flashlab.core import rundir
from flashlab.core.errors import verdict_exit_code
from flashlab.core.facts import CLIENT_FACTS
from flashlab.core.isolation import Isolation
from flashlab.core.platform import ComponentNotRunning
from flashlab.core.provenance import provenance
from flashlab.lab.abort import AbortSwitch
from flashlab.lab.capacity import probe_capacity
from flashlab.lab.events import Announcer
from flashlab.lab.events import NotesToStderr
from flashlab.lab.events import Phase
from flashlab.lab.events import RunEvents
from flashlab.lab.experiment import Experiment
from flashlab.lab.guards.watch import RunWatch
from flashlab.lab.hostspeed import HostSpeedProbe
from flashlab.lab.nemesis import RayNemesis
from flashlab.lab.nemesis import attached_ray
from flashlab.lab.nemesis import check_faults
from flashlab.lab.nemesis import wants_nemesis
from flashlab.lab.outcome import RunOutcome
from flashlab.lab.remote import Target
from flashlab.lab.remote import check_target
from flashlab.lab.rundirs import new_run_id
from flashlab.lab.rundirs import prepare_out_dir
from flashlab.lab.rundirs import record_failure
from flashlab.lab.scraper import MetricsScraper
from flashlab.lab.stacks import RunStack
from flashlab.lab.stacks import load_route
from flashlab.lab.stacks import open_stack
from flashlab.lab.stacks import resolve_isolation
from flashlab.simulator.engines import get_engine
from flashlab.simulator.engines import require_engine
from flashlab.simulator.engines.engine import LoadPlan
from flashlab.simulator.history import HistoryWriter
from flashlab.system.admin import AdminClient
from flashlab.system.admin import AdminError
from flashlab.system.platforms import require_platform
from flashlab.system.strategies import needs_queue_protocol
from flashlab.system.targets import require_serving
from flashlab.system.targets.reset import reset_target
from flashlab.system.targets.truth import read_target_truth
from flashlab.system.truth import read_truth


@dataclass
class ExperimentRequest:
    """What running an experiment takes, once (RunRequest) or as a trial set (TrialSetRequest)."""

    experiment: Experiment
    out_root: Path = Path("reports")
    target: Target | None = None
    write_report: bool = True
    # A target file whose backend the lab does not start (no `start:`) may be remote only when
    # the user says so (`--allow-remote`); the load plan is printed first.
    allow_remote: bool = False
    # Who listens to the phases and events (flashlab.lab.events); notes go to stderr unless the
    # list is replaced. Add a handler with `req.events.append(handler)`.
    events: list[RunEvents] = field(default_factory=lambda: [NotesToStderr()])


@dataclass
class RunRequest(ExperimentRequest):
    run_dir: Path | None = None  # exact directory (--out); default out_root/<run-id>
    manifest_extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"trial": {...}}
    # The run's cooperative stop: guards trip it, and so does the CLI's first Ctrl-C (while armed).
    abort: AbortSwitch = field(default_factory=AbortSwitch)


def _reset_product(stack: RunStack, exp: Experiment) -> None:
    if stack.target is not None:
        require_serving(stack.target, stack.values, stack.own_url)
        reset_target(stack.target, stack.values, stack.own_url, exp.product.id, exp.product.stock)
        return

    admin = AdminClient(stack.base_url, stack.admin_token)
    try:
        admin.wait_ready(timeout_s=30)
        admin.reset(exp.product.reset_request())
    except (AdminError, httpx.HTTPError) as exc:
        # The stack is up but does not serve: infrastructure (exit 4), not the experiment's verdict.
        raise ComponentNotRunning(f"{stack.base_url} does not serve the reset: {exc}") from exc


def _read_truth(stack: RunStack, exp: Experiment) -> Any:
    if stack.target is not None:
        return read_target_truth(
            stack.target, stack.values, stack.own_url, exp.product.id, exp.product.stock
        )

    try:
        return read_truth(stack.redis_url, exp.product.id)
    except redis.RedisError as exc:
        raise ComponentNotRunning(
            f"Redis at {stack.redis_url} unreadable after the load: {exc}"
        ) from exc


def _restarts(stack: RunStack) -> dict[str, int]:
    """Restart counts before the load: a platform may have respawned a component while starting."""
    if stack.platform is None:
        return {}
    return {c.name: c.restarts for c in stack.platform.components()}


def _check_components(stack: RunStack, exp: Experiment, before: dict[str, int]) -> None:
    """A component that died during a run without faults invalidates it: infrastructure (exit 4).

    Runs with faults expect kills and restarts, and their scheduler recovers every fault; an
    external stack (--target) is not the lab's to judge."""
    if stack.platform is None or exp.faults:
        return
    down = [
        c
        for c in stack.platform.components()
        if not c.running or c.restarts > before.get(c.name, 0)
    ]
    if down:
        what = ", ".join(
            f"{c.name} ({'not running' if not c.running else 'restarted'})" for c in down
        )
        raise ComponentNotRunning(f"component(s) died during the load without a fault: {what}")


def _initial_manifest(exp: Experiment, run_id: str) -> dict[str, Any]:
    return {
        "schema_version": rundir.SCHEMA_VERSION,
        "run_id": run_id,
        "complete": False,
        **provenance(exp.model_dump(mode="json")),
    }


def _write_faults(path: Path, table: Any) -> None:
    # Page checksums: a garbled file fails to load (exit 2) instead of loading wrong values.
    pq.write_table(table.cast(rundir.FAULTS_SCHEMA), path, write_page_checksum=True)


def _require_extras(exp: Experiment, target: Target | None) -> None:
    """A missing optional extra is bad input, refused before any run directory exists."""
    require_engine(exp.engine.kind)
    if target is None:
        require_platform(exp.stack.platform)


def _start_faults(
    exp: Experiment,
    stack: RunStack,
    engine: Any,
    t0_ns: int,
    watch: RunWatch,
    nemesis: RayNemesis | None,
    cleanup: ExitStack,
    abort: AbortSwitch,
) -> Any:
    """At t0: the run's fault scheduler, started (the nemesis when there is one); None if no faults."""
    # start-up cost: only this path pays for aiohttp
    from flashlab.chaos.scheduler import FaultScheduler

    gate = watch.steady_state_gate(t0_ns) if exp.faults else None
    if nemesis is not None:
        abort.on_trip(nemesis.halt)
        return nemesis.start(t0_ns, gate=gate)
    if not exp.faults:
        return None
    assert stack.info is not None, "faults need a stack the lab started (flashlab.lab.remote)"
    scheduler = FaultScheduler.for_run(
        exp.faults, stack.platform, stack.info, engine, t0_ns, gate=gate
    )
    # On any failure from here on, the ExitStack recovers every fault (idempotent stop) before
    # it stops the stack: LIFO, and registered after the stack.
    cleanup.callback(scheduler.stop)
    abort.on_trip(scheduler.halt)  # an abort recovers every fault at once
    return scheduler.start()


def _engine_preflight(exp: Experiment) -> None:
    """The engine's own bad-input checks (e.g. an unreachable --ray-address): before the run
    directory and the stack exist, so a refusal leaves nothing behind."""
    get_engine(exp.engine.kind).preflight(exp.engine.workers, exp.engine.ray_address)


def execute(req: RunRequest, stack: RunStack | None = None) -> RunOutcome:
    """Run one experiment end to end. Raises UserError for bad input; anything else propagates.

    `stack`: a stack from `shared_stack` to run on (left running afterwards); default: start
    one for this run (or use req.target) and stop it at the end. Every phase and event is
    announced to `req.events` (flashlab.lab.events).
    """
    exp = req.experiment
    events = Announcer(req.events)
    # A trial on a shared stack: its set has already checked the target and said the plan.
    check_target(
        exp, req.target, events.note if stack is None else (lambda _note: None), req.allow_remote
    )
    if wants_nemesis(exp):
        check_faults(exp.faults)
    _require_extras(exp, req.target)
    _engine_preflight(exp)
    isolation = resolve_isolation(exp, req.target)
    if isolation.requested and not isolation.applied:
        # Stderr by default, so `--json` stays one document; the record says the same (applied: false).
        events.note(isolation.describe())
    run_id = new_run_id(exp)
    run_dir = prepare_out_dir(req.run_dir, req.out_root, run_id)
    manifest = _initial_manifest(exp, run_id) | req.manifest_extra
    manifest["isolation"] = isolation.to_dict()
    rundir.write_json_atomic(run_dir / rundir.MANIFEST, manifest)
    run = _Run(req, events, run_id, run_dir, manifest, isolation, stack)
    try:
        outcome = _execute(run)
    except BaseException as exc:
        record_failure(run_dir / rundir.MANIFEST, manifest, exc)
        events.failed(exc)
        raise
    events.finished(outcome)
    return outcome


@dataclass
class _Run:
    """One run's state, handed from phase to phase."""

    req: RunRequest
    events: Announcer
    run_id: str
    run_dir: Path
    manifest: dict[str, Any]
    isolation: Isolation
    stack: RunStack | None = None  # shared (from shared_stack) until the stack phase sets it
    cleanup: ExitStack = field(default_factory=ExitStack)
    scraper: MetricsScraper | None = None
    watch: RunWatch | None = None
    scheduler: Any = None  # FaultScheduler (or the Ray nemesis), started at t0 with faults
    nemesis: RayNemesis | None = (
        None  # faults injected from the stack's Ray node (flashlab.lab.nemesis)
    )
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def exp(self) -> Experiment:
        return self.req.experiment

    @property
    def on_stack(self) -> RunStack:
        assert self.stack is not None, "the stack phase runs first"
        return self.stack


def _execute(run: _Run) -> RunOutcome:
    """The phases in order: those that need the stack inside its lifetime, judging after it."""
    shared = run.stack is not None
    with run.cleanup:
        for phase, step in _stack_phases(run.exp, shared):
            with run.events.phase(phase):
                step(run)
    for phase, step in _judging_phases(run.req.write_report):
        with run.events.phase(phase):
            step(run)
    run.manifest["finished_at"] = datetime.now(UTC).isoformat()
    run.manifest["complete"] = True
    rundir.write_json_atomic(run.run_dir / rundir.MANIFEST, run.manifest)
    return RunOutcome(
        run_dir=run.run_dir,
        summary=run.summary,
        exit_code=verdict_exit_code(run.summary["verdict"]),
    )


_Step = Callable[[_Run], None]


def _stack_phases(exp: Experiment, shared: bool) -> list[tuple[Phase, _Step]]:
    shoppers = f"running {exp.scenario.shoppers} shoppers on {exp.engine.kind}"
    return [
        (Phase("stack", "on the shared stack" if shared else "starting stack"), _start_stack),
        (Phase("capacity", "measuring capacity"), _measure_capacity),
        (Phase("reset", "resetting product"), _reset),
        (Phase("load", shoppers), _drive_load),
        (Phase("evidence", "collecting evidence"), _collect_evidence),
    ]


def _judging_phases(write_report: bool) -> list[tuple[Phase, _Step]]:
    phases: list[tuple[Phase, _Step]] = [(Phase("judge", "judging"), _judge)]
    if write_report:
        phases.append((Phase("report", "writing report"), _write_report))
    return phases


def _start_stack(run: _Run) -> None:
    address = run.exp.engine.ray_address
    if wants_nemesis(run.exp) and address is not None:  # (the nemesis implies an address)
        # Held until every fault is recovered (closed last); the engine reuses it.
        run.cleanup.enter_context(attached_ray(address))
    if run.stack is None:
        run.stack = run.cleanup.enter_context(
            open_stack(run.exp, run.req.target, run.isolation.stack)
        )
    run.manifest["stack"] = run.on_stack.public


def _measure_capacity(run: _Run) -> None:
    """The machine's capacity before the load (flashlab.lab.capacity), and the ideal times it
    allows this experiment, into the manifest."""
    exp = run.exp
    record = probe_capacity(run.on_stack, exp, run.isolation.load)
    run.manifest["capacity"] = record
    run.manifest["ideal"] = ideal(record, exp.scenario.shoppers, exp.product.stock)


def _reset(run: _Run) -> None:
    stack = run.on_stack
    _reset_product(stack, run.exp)
    run.manifest["facts"] = _facts(stack)
    if stack.target is not None:
        return  # a target has no flashlab /metrics to scrape: reconciliation says so
    run.scraper = MetricsScraper(stack.base_url).start()
    run.cleanup.callback(run.scraper.stop)


def _facts(stack: RunStack) -> list[str]:
    """What the requests carry and the answers say (flashlab.core.facts): the checks' n/a."""
    offered = stack.target.facts() if stack.target is not None else set(CLIENT_FACTS)
    return [f.value for f in CLIENT_FACTS if f in offered]


def _load_plan(run: _Run) -> Any:
    exp = run.exp
    return LoadPlan(
        run_id=run.run_id,
        product_id=exp.product.id,
        scenario=exp.scenario,
        seed=exp.seed,
        client=exp.engine.client,
        workers=exp.engine.workers,
        connections=exp.connections_per_worker(),
        tmp_dir=str(run.run_dir / ".tmp"),
        queue=exp.target is None and needs_queue_protocol(exp.product.strategy),
        target=exp.target.request() if exp.target is not None else None,
        **load_route(run.on_stack, exp, run.isolation.load),
    )


class _FaultsAtStart(RunEvents):
    """At t0: the load window opens in the manifest, and the fault schedule starts (if any)."""

    def __init__(self, run: _Run, engine: Any) -> None:
        self.run, self.engine = run, engine

    def load_started(self, t0_ns: int) -> None:
        run = self.run
        run.manifest["load_start_ns"] = t0_ns
        assert run.watch is not None
        run.scheduler = _start_faults(
            run.exp, run.on_stack, self.engine, t0_ns, run.watch, run.nemesis, run.cleanup,
            run.req.abort,
        )  # fmt: skip


def _drive_load(run: _Run) -> None:
    exp, stack = run.exp, run.on_stack
    engine = get_engine(exp.engine.kind)
    writer = HistoryWriter(run.run_dir / rundir.HISTORY)
    reference = {key: run.manifest.get(key) for key in ("capacity", "ideal")}
    run.watch = RunWatch(
        exp.guards, exp.hypothesis, exp.product.stock, stack.ready_url, run.req.abort, reference
    )
    run.cleanup.callback(run.watch.stop)
    if wants_nemesis(exp):
        run.nemesis = RayNemesis(exp, stack.info)
        run.cleanup.callback(run.nemesis.stop)  # recovers every fault if the run fails from here
        run.manifest["nemesis"] = run.nemesis.placed
    # The guards arm first (the steady-state gate the scheduler takes is theirs).
    load_events = Announcer([run.watch, _FaultsAtStart(run, engine), *run.events.handlers])
    restarts_before = _restarts(stack)
    probe = _host_speed_probe(run)
    try:
        result = engine.run(
            _load_plan(run),
            on_batch=run.watch.tee(writer.write),
            on_progress=load_events.progress if load_events.listens("progress") else None,
            on_start=load_events.load_started,
            stop=run.req.abort.event,
        )
    except BaseException:
        writer.abort()
        raise
    finally:
        run.watch.stop()
    run.manifest["load_end_ns"] = time.time_ns()
    run.manifest.setdefault("load_start_ns", run.manifest["load_end_ns"])
    run.manifest["host_speed"] = probe.stop(
        run.manifest["load_start_ns"], run.manifest["load_end_ns"]
    )
    run.manifest["engine"] = result.to_dict()
    writer.close()
    _check_components(stack, exp, restarts_before)
    if run.req.abort.abort is not None:
        run.events.aborted(run.req.abort.abort)


def _host_speed_probe(run: _Run) -> HostSpeedProbe:
    """A CPU-speed probe on each side of the split (one on the whole host when not split)."""
    iso = run.isolation
    sides: dict[str, Collection[int] | None]
    sides = {"stack": iso.stack, "load": iso.load} if iso.applied else {"host": None}
    probe = HostSpeedProbe(sides).start()
    run.cleanup.callback(probe.stop, 0, 0)  # reaps the probes if the load phase fails
    return probe


def _collect_evidence(run: _Run) -> None:
    scheduler = run.scheduler
    if scheduler is not None:
        scheduler.stop()
    faults = scheduler.table() if scheduler is not None else rundir.FAULTS_SCHEMA.empty_table()
    assert run.watch is not None
    run.watch.record(run.manifest, gated=scheduler is not None and scheduler.gated)
    _write_faults(run.run_dir / rundir.FAULTS, faults)
    truth = _read_truth(run.on_stack, run.exp)
    rundir.write_json_atomic(run.run_dir / rundir.TRUTH, truth.model_dump(mode="json"))
    scrapes = run.scraper.evidence() if run.scraper is not None else []
    rundir.write_json_atomic(run.run_dir / rundir.METRICS, scrapes)


def _judge(run: _Run) -> None:
    # Summary and report come from the files alone; `complete` is flipped only after both exist.
    # So the manifest on disk must already hold the load window and the engine result
    # (load-generator health included) they read: written now, still `complete: false`.
    rundir.write_json_atomic(run.run_dir / rundir.MANIFEST, run.manifest)
    run.summary = summarize(rundir.load_run(run.run_dir, require_complete=False))
    rundir.write_json_atomic(run.run_dir / rundir.SUMMARY, run.summary)


def _write_report(run: _Run) -> None:
    # start-up cost: only this path pays for matplotlib, jinja2
    from flashlab.analysis.report import write_report

    write_report(run.run_dir)
