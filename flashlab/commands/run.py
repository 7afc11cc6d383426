"""`flashlab run`: one experiment file -> a run directory, a result table and an exit code (the verdict)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from flashlab.console import UserError, console, emit_json

EPILOG = (
    "Examples:\n\n"
    "  flashlab run smoke                       # a shipped experiment, by name (flashlab experiments)\n\n"
    "  flashlab run experiments/lua.yaml\n\n"
    "  flashlab run experiments/seed-phase1-naive.yaml --shoppers 2000 --stock 200\n\n"
    "  flashlab run experiments/smoke.yaml --engine inline --json > summary.json\n\n"
    "  flashlab run experiments/lua.yaml --target http://127.0.0.1:8080 --redis redis://127.0.0.1:6379/0 "
    "--admin-token TOKEN\n\n"
    "Exit codes: 0 hypothesis holds, 1 it does not, 2 bad input."
)


def load_with_overrides(path: Path, overrides: dict[str, Any]) -> Any:
    from flashlab.chaos.experiment import ExperimentError, load_experiment

    try:
        return load_experiment(path, overrides)
    except ExperimentError as exc:
        raise UserError(str(exc)) from None


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_and_report(request: Any, json_output: bool, quiet: bool = False) -> Any:
    """Shared by `run` and `demo`: execute with a live display, print tables or JSON; the RunOutcome."""
    from flashlab.commands.display import LiveRun, print_summary
    from flashlab.run import execute

    exp = request.experiment
    live = LiveRun(
        exp.scenario.shoppers, exp.product.stock, enabled=console.is_terminal and not json_output
    )
    request.on_progress = live.update
    request.on_phase = live.set_phase if not (json_output or quiet) else (lambda _p: None)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` reaps like Ctrl-C does
    try:
        with live:
            outcome = execute(request)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stack and workers stopped; run left incomplete[/]")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if json_output:
        emit_json(outcome.summary | {"run_dir": str(outcome.run_dir)})
    elif not quiet:
        print_summary(outcome.summary, str(outcome.run_dir))
        report = outcome.run_dir / "report.html"
        if report.exists():
            console.print(f"report: [bold]{report}[/]")
    return outcome


def run(
    experiment: Annotated[
        Path,
        typer.Argument(
            help="Experiment YAML file, or the name of a shipped one (see `flashlab experiments`)."
        ),
    ],
    shoppers: Annotated[int | None, typer.Option(help="Override scenario.shoppers.")] = None,
    stock: Annotated[int | None, typer.Option(help="Override product.stock.")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="Override product.strategy: naive|lock|optimistic|lua.")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="Override engine.kind: ray|process|inline.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Override the seed (same seed, same shoppers).")
    ] = None,
    platform: Annotated[
        str | None, typer.Option(help="Override stack.platform: local|compose.")
    ] = None,
    durability: Annotated[str | None, typer.Option(help="Override stack.durability.")] = None,
    client: Annotated[
        str | None, typer.Option(help="Shopper HTTP client: aiohttp|httpx|raw.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Attach to an existing Ray cluster.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default reports/<run-id>).")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Use a running stack at this loopback base URL.")
    ] = None,
    redis: Annotated[
        str | None, typer.Option(help="With --target: its Redis URL (truth channel).")
    ] = None,
    admin_token: Annotated[str | None, typer.Option(help="With --target: its admin token.")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html.")] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print summary.json to stdout.")
    ] = False,
) -> None:
    """Run a flash sale from an experiment file and judge it."""
    from flashlab.run import RunRequest, Target

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
    }
    exp = load_with_overrides(experiment, overrides)
    tgt = None
    if target or redis or admin_token:
        if not (target and redis and admin_token):
            raise UserError("--target, --redis and --admin-token go together")
        tgt = Target(target, redis, admin_token)
    request = RunRequest(experiment=exp, run_dir=out, target=tgt, write_report=report)
    raise typer.Exit(run_and_report(request, json_output).exit_code)


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(run)


__all__ = ["register", "run", "run_and_report"]
