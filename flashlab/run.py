"""Run orchestration: one experiment in, one complete run directory and a verdict out.

The order of work is the contract of a run directory: manifest.json is written first with
`complete: false`, then history/faults/truth/metrics/summary/report, and `complete: true` last,
so an interrupted or failed run never looks complete. Doing (stack, engine, faults) and judging
(flashlab.analysis.summary, which reads only the directory) stay separate.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow.parquet as pq

from flashlab import meta
from flashlab.analysis import rundir
from flashlab.chaos.experiment import Experiment
from flashlab.console import UserError


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
    platform: Any = None  # flashlab.system.platforms.base.Platform when the lab started it
    info: Any = None  # StackInfo
    public: dict[str, Any] = field(default_factory=dict)  # for the manifest (no token)


@contextmanager
def _stack(exp: Experiment, target: Target | None, workdir: Path) -> Iterator[_Stack]:
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
    from flashlab.system.admin import AdminClient

    admin = AdminClient(stack.base_url, stack.admin_token)
    admin.wait_ready(timeout_s=30)
    admin.reset(exp.product.reset_request())


def _initial_manifest(exp: Experiment, run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "complete": False,
        "experiment": exp.model_dump(mode="json"),
        "started_at": datetime.now(UTC).isoformat(),
        "versions": meta.versions(),
        "git_revision": meta.git_revision(),
        "host": meta.host(),
    }


def _write_faults(path: Path, table: Any) -> None:
    pq.write_table(table.cast(rundir.FAULTS_SCHEMA), path)


def _require_extras(exp: Experiment, target: Target | None) -> None:
    """A missing optional extra is bad input, refused before any run directory exists."""
    from flashlab.simulator.engines import require_engine
    from flashlab.system.platforms import require_platform

    require_engine(exp.engine.kind)
    if target is None:
        require_platform(exp.stack.platform)


def execute(req: RunRequest) -> RunOutcome:
    """Run one experiment end to end. Raises UserError for bad input; anything else propagates."""
    exp = req.experiment
    if req.target is not None:
        require_loopback(req.target.base_url, "--target")
        require_loopback(req.target.redis_url, "--redis")
        if exp.faults:
            raise UserError("--target: faults need a stack the lab started itself (drop --target)")
    _require_extras(exp, req.target)
    run_id = new_run_id(exp)
    run_dir = _prepare_dir(req, run_id)
    manifest = _initial_manifest(exp, run_id)
    rundir.write_json_atomic(run_dir / rundir.MANIFEST, manifest)
    try:
        return _execute(req, exp, run_id, run_dir, manifest)
    except BaseException as exc:
        # Leave an honest trace: the directory stays `complete: false` and says why.
        manifest["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        manifest["finished_at"] = datetime.now(UTC).isoformat()
        rundir.write_json_atomic(run_dir / rundir.MANIFEST, manifest)
        raise


def _execute(
    req: RunRequest, exp: Experiment, run_id: str, run_dir: Path, manifest: dict[str, Any]
) -> RunOutcome:
    from flashlab.analysis.summary import summarize
    from flashlab.chaos.scheduler import FaultScheduler
    from flashlab.simulator.engines import LoadPlan, get_engine
    from flashlab.simulator.history import HistoryWriter
    from flashlab.system.truth import read_truth

    with ExitStack() as cleanup:
        req.on_phase("starting stack")
        stack = cleanup.enter_context(_stack(exp, req.target, run_dir))
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
        )
        writer = HistoryWriter(run_dir / rundir.HISTORY)
        scheduler: FaultScheduler | None = None  # made at t0, when the experiment has faults

        def on_start(t0_ns: int) -> None:
            nonlocal scheduler
            manifest["load_start_ns"] = t0_ns
            if exp.faults:
                scheduler = FaultScheduler.for_run(
                    exp.faults, stack.platform, stack.info, engine, t0_ns
                )
                # On any failure from here on, the ExitStack recovers every fault (idempotent
                # stop) before it stops the stack: LIFO, and registered after the stack.
                cleanup.callback(scheduler.stop)
                scheduler.start()

        req.on_phase(f"running {exp.scenario.shoppers} shoppers on {exp.engine.kind}")
        try:
            result = engine.run(
                plan, on_batch=writer.write, on_progress=req.on_progress, on_start=on_start
            )
        except BaseException:
            writer.abort()
            raise
        manifest["load_end_ns"] = time.time_ns()
        manifest.setdefault("load_start_ns", manifest["load_end_ns"])
        manifest["engine"] = getattr(result, "to_dict", lambda: {})()
        writer.close()

        req.on_phase("collecting evidence")
        if scheduler is not None:
            scheduler.stop()
        faults = scheduler.table() if scheduler is not None else rundir.FAULTS_SCHEMA.empty_table()
        _write_faults(run_dir / rundir.FAULTS, faults)
        truth = read_truth(stack.redis_url, exp.product.id)
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
        run_dir=run_dir, summary=summary, exit_code=0 if summary["verdict"] == "pass" else 1
    )
