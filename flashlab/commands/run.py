"""`flashlab run`: one experiment file -> a run directory, a result table and an exit code (the verdict)."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Annotated
from typing import Any

import typer

from flashlab.commands.choices import ClientName
from flashlab.commands.choices import EngineName
from flashlab.commands.choices import PlatformName
from flashlab.commands.choices import StrategyName
from flashlab.commands.ci import JunitOption
from flashlab.commands.ci import SummaryMdOption
from flashlab.commands.ci import write_ci_outputs
from flashlab.commands.ci import write_error_outputs
from flashlab.commands.cpus import CpusOpt
from flashlab.commands.cpus import IsolationOpt
from flashlab.commands.cpus import isolation_overrides
from flashlab.console import console
from flashlab.console import emit_json
from flashlab.console import err_console
from flashlab.core.errors import EXIT_CODES_HELP
from flashlab.core.errors import EXIT_INTERRUPTED
from flashlab.core.errors import UserError
from flashlab.core.platform import Durability
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import REPORT
from flashlab.core.rundir import read_json

EPILOG = (
    "Examples:\n\n"
    "  flashlab run smoke                       # a shipped experiment, by name (flashlab experiments)\n\n"
    "  flashlab run experiments/lua.yaml\n\n"
    "  flashlab run experiments/seed-phase1-naive.yaml --shoppers 2000 --stock 200\n\n"
    "  flashlab run experiments/smoke.yaml --engine inline --json > summary.json\n\n"
    "  flashlab run experiments/lua.yaml --repeat 5          # trial set: median + 95% CI\n\n"
    "  flashlab run experiments/lua.yaml --cpus 0:1          # stack on CPU 0, load on CPU 1\n\n"
    "  flashlab run experiments/lua.yaml --isolation off     # stack and load share every CPU\n\n"
    "  flashlab run experiments/smoke.yaml --junit junit.xml --summary-md summary.md   # CI\n\n"
    "  flashlab run experiments/actor-kill.yaml --ray-address 10.0.0.5:6379   # a Ray cluster\n\n"
    "  flashlab run experiments/targets/node-lock.yaml        # a backend the lab did not build\n\n"
    "  flashlab run experiments/lua.yaml --target-file targets/pg-atomic.yaml   # same sale, PostgreSQL shop\n\n"
    "  flashlab run experiments/lua.yaml --target http://127.0.0.1:8080 --redis redis://127.0.0.1:6379/0 "
    "--admin-token TOKEN\n\n"
    "  flashlab run experiments/smoke.yaml --target https://staging.example:443 --redis "
    "redis://staging.example:6379/0 --admin-token TOKEN --allow-remote   # says the load first\n\n"
    "Verdict: safety clauses (oversell, lost orders, 5xx, ...) always decide; timing clauses "
    "(latency, throughput, durations, recovery, generator_*) are inconclusive when the load "
    "generator was unhealthy or CPU isolation was requested but not applied, and when the host's "
    "CPU speed was unsteady (summary host_speed) and the value lies within that spread of its "
    "threshold.\n\n"
    "--repeat N (or `repeat:` in the file): N trials on one stack, seeds seed..seed+N-1; the set "
    "fails if any trial fails a safety clause; a timing clause is judged on the 95% CI of its "
    "median (order statistics from 6 trials, a t interval below) (`<`: the upper bound must hold, `>`: the lower bound); an interval that "
    "straddles the threshold is inconclusive. See docs/METHOD.md.\n\n"
    "Ctrl-C during the load aborts like a guard: the load stops, faults are recovered and the run "
    "directory is written with verdict fail. A second Ctrl-C stops hard (run left incomplete, "
    "exit 130).\n\n" + EXIT_CODES_HELP
)


def load_with_overrides(path: Path, overrides: dict[str, Any]) -> Any:
    # start-up cost: only this path pays for redis, orjson
    from flashlab.lab.experiment import ExperimentError
    from flashlab.lab.experiment import load_experiment

    try:
        return load_experiment(path, overrides)
    except ExperimentError as exc:
        raise UserError(str(exc)) from None


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_handler(request: Any) -> Any:
    """First Ctrl-C while the load runs: abort like a guard (a complete run, verdict fail).
    Any other Ctrl-C (before the load, after it, or a second one): hard stop, run left incomplete."""

    def handler(_signum: int, _frame: object) -> None:
        if request.abort.armed and request.abort.trip("interrupt"):
            with contextlib.suppress(RuntimeError):  # a reentrant write to stderr: skip the line
                err_console.print(
                    "[yellow]interrupted: stopping the load and recovering faults; "
                    "the run will be judged as aborted (Ctrl-C again to stop hard)[/]"
                )
            return
        raise KeyboardInterrupt

    return handler


def run_and_report(request: Any, json_output: bool, quiet: bool = False) -> Any:
    """Shared by `run` and `demo`: execute with a live display, print tables or JSON; the RunOutcome."""
    # start-up cost: only this path pays for redis, httpx, prometheus_client
    from flashlab.commands.display import LiveRun
    from flashlab.commands.display import print_summary
    from flashlab.lab.run import execute

    exp = request.experiment
    live = LiveRun(
        exp.scenario.shoppers,
        exp.product.stock,
        enabled=console.is_terminal and not json_output,
        show_phases=not (json_output or quiet),
    )
    request.events.append(live)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` reaps like a hard stop
    previous_int = signal.signal(signal.SIGINT, _interrupt_handler(request))
    try:
        with live:
            outcome = execute(request)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stack and workers stopped; run left incomplete[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    if json_output:
        emit_json(outcome.summary | {"run_dir": str(outcome.run_dir)})
    elif not quiet:
        print_summary(outcome.summary, str(outcome.run_dir))
        report = outcome.run_dir / "report.html"
        if report.exists():
            console.print(f"report: [bold]{report}[/]")
    return outcome


# `run`'s options (module level, so the command reads as one short function).
ShoppersOpt = Annotated[int | None, typer.Option(help="Override scenario.shoppers.")]
StockOpt = Annotated[int | None, typer.Option(help="Override product.stock.")]
# The fixed-value options are choices (flashlab.commands.choices): --help lists the values.
StrategyOpt = Annotated[StrategyName | None, typer.Option(help="Override product.strategy.")]
EngineOpt = Annotated[EngineName | None, typer.Option(help="Override engine.kind.")]
SeedOpt = Annotated[int | None, typer.Option(help="Override the seed (same seed, same shoppers).")]
PlatformOpt = Annotated[PlatformName | None, typer.Option(help="Override stack.platform.")]
DurabilityOpt = Annotated[Durability | None, typer.Option(help="Override stack.durability.")]
ClientOpt = Annotated[
    ClientName | None, typer.Option(help="Override engine.client (the shoppers' HTTP client).")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        help="Attach to a Ray cluster: its GCS address HOST:PORT, or auto (docs/SCALE.md)."
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(help="Run directory (default reports/<run-id>); with --repeat the set's."),
]
TargetOpt = Annotated[
    str | None, typer.Option(help="Use a running stack at this loopback base URL.")
]
RedisOpt = Annotated[str | None, typer.Option(help="With --target: its Redis URL (truth channel).")]
AllowRemoteOpt = Annotated[
    bool,
    typer.Option(
        "--allow-remote",
        help="Let --target/--redis name a non-loopback host (prints the load plan first).",
    ),
]
AdminTokenOpt = Annotated[str | None, typer.Option(help="With --target: its admin token.")]
TargetFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="A backend the lab did not build, described by a target file (docs/TARGETS.md): "
        "replaces the experiment's stack: and strategy.",
    ),
]


def _checked_repeat(value: int | None) -> int | None:
    """--repeat's callback: checked while the command line is parsed, so `--repeat 0` names the
    flag (not the experiment field) before any file is read."""
    if value is not None:
        # start-up cost: only this path pays for matplotlib, jinja2, redis
        from flashlab.lab.trials import check_repeat

        check_repeat(value)
    return value


RepeatOpt = Annotated[
    int | None,
    typer.Option(
        help="Trials on one stack (overrides `repeat:`); > 1 writes a trial set.",
        callback=_checked_repeat,
    ),
]
# --repeat of the grid commands (matrix, sweep): every cell is a trial set of this many.
CellRepeatOpt = Annotated[
    int | None,
    typer.Option(
        help="Trials per cell on the cell's stack (> 1: median and 95% CI); "
        "default: the experiment's `repeat:`.",
        callback=_checked_repeat,
    ),
]
ReportOpt = Annotated[bool, typer.Option(help="Write report.html.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print summary.json to stdout.")]


def run(
    experiment: Annotated[
        Path,
        typer.Argument(
            help="Experiment YAML file, or the name of a shipped one (see `flashlab experiments`)."
        ),
    ],
    shoppers: ShoppersOpt = None,
    stock: StockOpt = None,
    strategy: StrategyOpt = None,
    engine: EngineOpt = None,
    seed: SeedOpt = None,
    platform: PlatformOpt = None,
    durability: DurabilityOpt = None,
    client: ClientOpt = None,
    ray_address: RayAddressOpt = None,
    out: OutOpt = None,
    target: TargetOpt = None,
    redis: RedisOpt = None,
    admin_token: AdminTokenOpt = None,
    allow_remote: AllowRemoteOpt = False,
    target_file: TargetFileOpt = None,
    repeat: RepeatOpt = None,
    report: ReportOpt = True,
    json_output: JsonOpt = False,
    isolation: IsolationOpt = None,
    cpus: CpusOpt = None,
    junit: JunitOption = None,
    summary_md: SummaryMdOption = None,
) -> None:
    """Run a flash sale from an experiment file and judge it (once, or as N trials with --repeat)."""
    overrides = {
        "scenario.shoppers": shoppers,
        "product.stock": stock,
        "product.strategy": strategy,
        "engine.kind": engine,
        "seed": seed,
        "stack.platform": platform,
        "stack.durability": durability,
        "engine.client": client,
        "engine.ray_address": ray_address,
        "target": str(target_file) if target_file is not None else None,
        **isolation_overrides(isolation, cpus),
    }
    if target_file is not None and (target or redis or admin_token):
        raise UserError("--target-file: not with --target/--redis/--admin-token (pick one backend)")
    target_args = (target, redis, admin_token, allow_remote)
    ci_outputs = (junit, summary_md)
    overrides["repeat"] = repeat
    _run_file(experiment, overrides, out, target_args, report, json_output, ci_outputs)


def _external_target(
    target: str | None, redis: str | None, admin_token: str | None, allow_remote: bool
) -> Any:
    """`--target/--redis/--admin-token [--allow-remote]` as a Target (all three or none)."""
    # start-up cost: only this path pays for redis, orjson
    from flashlab.lab.remote import Target

    if not (target or redis or admin_token):
        return None
    if not (target and redis and admin_token):
        raise UserError("--target, --redis and --admin-token go together")
    return Target(target, redis, admin_token, allow_remote=allow_remote)


def _run_file(
    experiment: Path,
    overrides: dict[str, Any],
    out: Path | None,
    target_args: tuple[str | None, str | None, str | None, bool],
    report: bool,
    json_output: bool,
    ci_outputs: tuple[Path | None, Path | None],
) -> None:
    """Load the experiment, run it (or its trial set), write the CI outputs, exit by verdict."""
    # start-up cost: only this path pays for redis, httpx, prometheus_client
    from flashlab.lab.run import RunRequest

    junit, summary_md = ci_outputs
    try:
        exp = load_with_overrides(experiment, overrides)
        tgt = _external_target(*target_args)
        allow_remote = target_args[3]
        if allow_remote and tgt is None and exp.target is None:
            raise UserError("--allow-remote: only with --target/--redis or a target file")
        if exp.repeat > 1:
            outcome = run_trials_and_report(exp, out, tgt, report, json_output, allow_remote)
        else:
            request = RunRequest(
                experiment=exp,
                run_dir=out,
                target=tgt,
                write_report=report,
                allow_remote=allow_remote,
            )
            outcome = run_and_report(request, json_output)
    except Exception as exc:  # no verdict: CI still gets a JUnit error and a summary line
        write_error_outputs(experiment.stem, exc, junit, summary_md)
        raise
    _write_run_ci_outputs(outcome, exp.name, junit, summary_md, json_output)
    raise typer.Exit(outcome.exit_code)


def _write_run_ci_outputs(
    outcome: Any, name: str, junit: Path | None, summary_md: Path | None, quiet: bool
) -> None:
    """JUnit and markdown for a run, or for a trial set: one suite per trial, the set's headline."""
    # start-up cost: only this path pays for the analysis modules and the check registry
    from flashlab.analysis.junit import run_suite
    from flashlab.analysis.markdown import run_markdown

    runs = getattr(outcome, "outcomes", None) or [outcome]
    suites = []
    for index, one in enumerate(runs, 1):
        report = one.run_dir / REPORT
        started = read_json(one.run_dir / MANIFEST).get("started_at")
        title = name if len(runs) == 1 else f"{name}.trial-{index:02d}"
        suites.append(run_suite(one.summary, title, timestamp=started, report=_existing(report)))
    if len(runs) == 1:
        markdown = run_markdown(outcome.summary, name, _existing(outcome.run_dir / REPORT))
    else:  # the set's verdict and reasons over the first trial's headline table
        head = runs[0].summary | {
            "verdict": outcome.result["verdict"],
            "verdict_reasons": outcome.result.get("verdict_reasons") or [],
        }
        markdown = run_markdown(
            head, f"{name} ({len(runs)} trials)", _existing(outcome.set_dir / "trials.html")
        )
    write_ci_outputs(suites, markdown, junit, summary_md, quiet)


def _existing(path: Path) -> str | None:
    return str(path) if path.exists() else None


def run_trials_and_report(
    exp: Any,
    out: Path | None,
    target: Any,
    write_report: bool,
    json_output: bool,
    allow_remote: bool = False,
) -> Any:
    """`run --repeat N`: the trial set with a live display per trial; the TrialSetOutcome."""
    # start-up cost: only this path pays for matplotlib, jinja2, redis
    from flashlab.commands.display import LiveRun
    from flashlab.commands.display import print_trial_set
    from flashlab.lab.trials import TrialSetRequest
    from flashlab.lab.trials import run_trials

    live = LiveRun(
        exp.scenario.shoppers,
        exp.product.stock,
        enabled=console.is_terminal and not json_output,
        show_phases=not json_output,
        trial_lines=not json_output,
    )
    request = TrialSetRequest(
        experiment=exp,
        repeat=exp.repeat,
        set_dir=out,
        target=target,
        write_report=write_report,
        allow_remote=allow_remote,
    )
    request.events.append(live)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with live:
            outcome = run_trials(request)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted: stack and workers stopped; trial set left incomplete[/]"
        )
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if json_output:
        emit_json(outcome.result | {"set_dir": str(outcome.set_dir)})
    else:
        print_trial_set(outcome.result, str(outcome.set_dir))
    return outcome


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(run)


__all__ = ["register", "run", "run_and_report", "run_trials_and_report"]
