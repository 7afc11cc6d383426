"""Run orchestration: one experiment in, one complete run directory and a verdict out.

The order of work is the contract of a run directory: manifest.json is written first with
`complete: false`, then history/faults/truth/metrics/summary/report, and `complete: true` last,
so an interrupted or failed run never looks complete. Doing (stack, engine, faults) and judging
(flashlab.analysis.summary, which reads only the directory) stay separate.
"""

from __future__ import annotations

import ipaddress
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow.parquet as pq

from flashlab.core import meta, rundir
from flashlab.core.errors import UserError, verdict_exit_code
from flashlab.core.isolation import Isolation, IsolationError, resolve
from flashlab.core.platform import ComponentNotRunning
from flashlab.lab.experiment import Experiment
from flashlab.lab.guards import AbortSwitch, RunWatch


@dataclass(frozen=True)
class Target:
    """An already-running stack (`--target/--redis`): the lab resets and loads it but starts nothing."""

    base_url: str
    redis_url: str
    admin_token: str


@dataclass
class RunRequest:
    experiment: Experiment
    out_root: Path = Path("reports")
    run_dir: Path | None = None  # exact directory (--out); default out_root/<run-id>
    target: Target | None = None
    write_report: bool = True
    on_progress: Callable[[Any], None] | None = None
    on_phase: Callable[[str], None] = lambda _phase: None
    # One-line notes for the user (e.g. isolation not applied); the CLI prints them on stderr.
    on_note: Callable[[str], None] = lambda note: print(f"note: {note}", file=sys.stderr)
    manifest_extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"trial": {...}}
    # The run's cooperative stop: guards trip it, and so does the CLI's first Ctrl-C (while armed).
    abort: AbortSwitch = field(default_factory=AbortSwitch)


@dataclass
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]
    exit_code: int


def require_loopback(url: str, flag: str) -> None:
    """Load goes only to loopback: refuse anything else with a one-line error naming the flag."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise UserError(f"{flag}: {url!r} is not a loopback address (127.0.0.0/8, ::1, localhost)")


def new_run_id(experiment: Experiment) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{experiment.name}-{secrets.token_hex(2)}"


def _prepare_dir(req: RunRequest, run_id: str) -> Path:
    run_dir = req.run_dir or (req.out_root / run_id)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"--out: {run_dir} already exists and is not empty")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


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


@dataclass
class _Stack:
    base_url: str
    redis_url: str
    admin_token: str
    platform: Any = None  # flashlab.core.platform.Platform when the lab started it
    info: Any = None  # StackInfo
    public: dict[str, Any] = field(default_factory=dict)  # for the manifest (no token)


def resolve_isolation(exp: Experiment, target: Target | None) -> Isolation:
    """The run's CPU split from `isolation:` (bad input -> UserError naming the field)."""
    spec = exp.isolation
    try:
        iso = resolve(spec.mode, spec.stack_cpus, spec.load_cpus)
    except IsolationError as exc:
        raise UserError(f"isolation: {exc}") from None
    if target is not None and iso.applied:
        # Not our stack: only the load is pinned here; pin the stack where it was started
        # (`flashlab stack up` takes the same --isolation/--cpus and the same auto split).
        iso = replace(iso, reason="stack external (--target): only the load was pinned here")
    return iso


@contextmanager
def shared_stack(exp: Experiment, target: Target | None, workdir: Path) -> Iterator[_Stack]:
    """One stack for several runs (repeated trials): pass it to `execute(req, stack=...)`.

    Each run still resets the product first; the stack is stopped when the block ends.
    """
    with _stack(exp, target, workdir, resolve_isolation(exp, target).stack) as stack:
        yield stack


@contextmanager
def _stack(
    exp: Experiment, target: Target | None, workdir: Path, cpus: list[int] | None = None
) -> Iterator[_Stack]:
    if target is not None:
        yield _Stack(
            target.base_url,
            target.redis_url,
            target.admin_token,
            public={"platform": "external", "base_url": target.base_url},
        )
        return
    from flashlab.chaos.faults import needs_proxy
    from flashlab.system.platforms import StackConfig, get_platform

    config = StackConfig(
        workers=exp.stack.workers,
        durability=exp.stack.durability,
        redis_timeout_ms=exp.stack.redis_timeout_ms,
        prometheus=exp.stack.prometheus,
        proxy=needs_proxy([f.fault for f in exp.faults]),
        cpus=cpus,
    )
    platform = get_platform(exp.stack.platform, config)
    try:
        info = platform.start()
        public = info.to_dict()
        public.pop("admin_token", None)
        yield _Stack(info.base_url, info.redis_url, info.admin_token, platform, info, public)
    finally:
        platform.stop()


def _reset_product(stack: _Stack, exp: Experiment) -> None:
    from flashlab.system.admin import AdminClient, AdminError

    admin = AdminClient(stack.base_url, stack.admin_token)
    try:
        admin.wait_ready(timeout_s=30)
        admin.reset(exp.product.reset_request())
    except (AdminError, httpx.HTTPError) as exc:
        # The stack is up but does not serve: infrastructure (exit 4), not the experiment's verdict.
        raise ComponentNotRunning(f"{stack.base_url} does not serve the reset: {exc}") from exc


def _read_truth(stack: _Stack, exp: Experiment) -> Any:
    import redis

    from flashlab.system.truth import read_truth

    try:
        return read_truth(stack.redis_url, exp.product.id)
    except redis.RedisError as exc:
        raise ComponentNotRunning(
            f"Redis at {stack.redis_url} unreadable after the load: {exc}"
        ) from exc


def _restarts(stack: _Stack) -> dict[str, int]:
    """Restart counts before the load: a platform may have respawned a component while starting."""
    if stack.platform is None:
        return {}
    return {c.name: c.restarts for c in stack.platform.components()}


def _check_components(stack: _Stack, exp: Experiment, before: dict[str, int]) -> None:
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
        "experiment": exp.model_dump(mode="json"),
        "started_at": datetime.now(UTC).isoformat(),
        "versions": meta.versions(),
        "git_revision": meta.git_revision(),
        "host": meta.host(),
    }


def _write_faults(path: Path, table: Any) -> None:
    # Page checksums: a garbled file fails to load (exit 2) instead of loading wrong values.
    pq.write_table(table.cast(rundir.FAULTS_SCHEMA), path, write_page_checksum=True)


def _engine_preflight(exp: Experiment) -> None:
    """The engine's own bad-input checks (e.g. an unreachable --ray-address): before the run
    directory and the stack exist, so a refusal leaves nothing behind."""
    from flashlab.simulator.engines import get_engine

    get_engine(exp.engine.kind).preflight(exp.engine.workers, exp.engine.ray_address)


def execute(req: RunRequest, stack: _Stack | None = None) -> RunOutcome:
    """Run one experiment end to end. Raises UserError for bad input; anything else propagates.

    `stack`: a stack from `shared_stack` to run on (left running afterwards); default: start
    one for this run (or use req.target) and stop it at the end.
    """
    exp = req.experiment
    if req.target is not None:
        require_loopback(req.target.base_url, "--target")
        require_loopback(req.target.redis_url, "--redis")
        if exp.faults:
            raise UserError("--target: faults need a stack the lab started itself (drop --target)")
    _engine_preflight(exp)
    isolation = resolve_isolation(exp, req.target)
    if isolation.requested and not isolation.applied:
        # Stderr, so `--json` stays one document; the record says the same (applied: false).
        req.on_note(isolation.describe())
    run_id = new_run_id(exp)
    run_dir = _prepare_dir(req, run_id)
    manifest = _initial_manifest(exp, run_id) | req.manifest_extra
    manifest["isolation"] = isolation.to_dict()
    rundir.write_json_atomic(run_dir / rundir.MANIFEST, manifest)
    try:
        return _execute(req, exp, run_id, run_dir, manifest, isolation, stack)
    except BaseException as exc:
        # Leave an honest trace: the directory stays `complete: false` and says why.
        manifest["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        manifest["finished_at"] = datetime.now(UTC).isoformat()
        rundir.write_json_atomic(run_dir / rundir.MANIFEST, manifest)
        raise


def _execute(
    req: RunRequest,
    exp: Experiment,
    run_id: str,
    run_dir: Path,
    manifest: dict[str, Any],
    isolation: Isolation,
    shared: _Stack | None = None,
) -> RunOutcome:
    from flashlab.analysis.summary import summarize
    from flashlab.chaos.scheduler import FaultScheduler
    from flashlab.simulator.engines import LoadPlan, get_engine
    from flashlab.simulator.history import HistoryWriter

    with ExitStack() as cleanup:
        req.on_phase("starting stack" if shared is None else "on the shared stack")
        stack = shared or cleanup.enter_context(_stack(exp, req.target, run_dir, isolation.stack))
        manifest["stack"] = stack.public
        req.on_phase("resetting product")
        _reset_product(stack, exp)
        scraper = MetricsScraper(stack.base_url).start()
        cleanup.callback(scraper.stop)

        engine = get_engine(exp.engine.kind)
        plan = LoadPlan(
            run_id=run_id,
            base_url=stack.base_url,
            product_id=exp.product.id,
            scenario=exp.scenario,
            seed=exp.seed,
            client=exp.engine.client,
            workers=exp.engine.workers,
            connections=exp.engine.connections,
            ray_address=exp.engine.ray_address,
            tmp_dir=str(run_dir / ".tmp"),
            cpus=isolation.load,
        )
        writer = HistoryWriter(run_dir / rundir.HISTORY)
        scheduler: FaultScheduler | None = None  # made at t0, when the experiment has faults
        watch = RunWatch(exp.guards, exp.hypothesis, exp.product.stock, stack.base_url, req.abort)
        cleanup.callback(watch.stop)

        def on_start(t0_ns: int) -> None:
            nonlocal scheduler
            manifest["load_start_ns"] = t0_ns
            watch.start(t0_ns)
            if exp.faults:
                scheduler = FaultScheduler.for_run(
                    exp.faults,
                    stack.platform,
                    stack.info,
                    engine,
                    t0_ns,
                    gate=watch.steady_state_gate(t0_ns),
                )
                # On any failure from here on, the ExitStack recovers every fault (idempotent
                # stop) before it stops the stack: LIFO, and registered after the stack.
                cleanup.callback(scheduler.stop)
                req.abort.on_trip(scheduler.halt)  # an abort recovers every fault at once
                scheduler.start()

        restarts_before = _restarts(stack)
        req.on_phase(f"running {exp.scenario.shoppers} shoppers on {exp.engine.kind}")
        try:
            result = engine.run(
                plan,
                on_batch=watch.tee(writer.write),
                on_progress=req.on_progress,
                on_start=on_start,
                stop=req.abort.event,
            )
        except BaseException:
            writer.abort()
            raise
        finally:
            watch.stop()
        manifest["load_end_ns"] = time.time_ns()
        manifest.setdefault("load_start_ns", manifest["load_end_ns"])
        manifest["engine"] = getattr(result, "to_dict", lambda: {})()
        writer.close()
        _check_components(stack, exp, restarts_before)

        req.on_phase("collecting evidence")
        if scheduler is not None:
            scheduler.stop()
        faults = scheduler.table() if scheduler is not None else rundir.FAULTS_SCHEMA.empty_table()
        watch.record(manifest, gated=scheduler is not None and scheduler.gated)
        _write_faults(run_dir / rundir.FAULTS, faults)
        truth = _read_truth(stack, exp)
        rundir.write_json_atomic(run_dir / rundir.TRUTH, truth.model_dump(mode="json"))
        rundir.write_json_atomic(run_dir / rundir.METRICS, scraper.evidence())

    req.on_phase("judging")
    # Summary and report come from the files alone; `complete` is flipped only after both exist.
    # So the manifest on disk must already hold the load window and the engine result
    # (generator health included) they read: written now, still `complete: false`.
    rundir.write_json_atomic(run_dir / rundir.MANIFEST, manifest)
    summary = summarize(rundir.load_run(run_dir, require_complete=False))
    rundir.write_json_atomic(run_dir / rundir.SUMMARY, summary)
    if req.write_report:
        req.on_phase("writing report")
        from flashlab.analysis.report import write_report

        write_report(run_dir)
    manifest["finished_at"] = datetime.now(UTC).isoformat()
    manifest["complete"] = True
    rundir.write_json_atomic(run_dir / rundir.MANIFEST, manifest)
    return RunOutcome(
        run_dir=run_dir, summary=summary, exit_code=verdict_exit_code(summary["verdict"])
    )
