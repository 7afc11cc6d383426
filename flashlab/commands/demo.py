"""`flashlab demo` (what `make demo` runs): the reference's oversell, then a safe sale through faults."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from flashlab.console import console

DEMO_RUNS = (
    # (experiment file, what a correct lab shows, expected exit code)
    (
        "experiments/seed-phase1-naive.yaml",
        "naive read-then-write oversells (the reference's phase 1)",
        1,
    ),
    (
        "experiments/demo-chaos.yaml",
        "lua + AOF always survives a Redis kill and a worker-kill storm",
        0,
    ),
)


def demo(
    shoppers: Annotated[
        int, typer.Option(help="Shoppers per run (bounded).", min=100, max=20_000)
    ] = 5_000,
    out: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("reports"),
) -> None:
    """Start the local stack, run a flash sale with faults, print the verdict and the HTML report path.

    Example:

      flashlab demo --shoppers 2000
    """
    from flashlab.commands.run import load_with_overrides, run_and_report
    from flashlab.run import RunRequest

    started = time.monotonic()
    surprises = 0
    for path, story, expected in DEMO_RUNS:
        exp = load_with_overrides(
            Path(path), {"scenario.shoppers": shoppers, "product.stock": shoppers // 10}
        )
        console.rule(f"[bold]{exp.name}[/]: {story}")
        code = run_and_report(RunRequest(experiment=exp, out_root=out), json_output=False)
        if code != expected:
            surprises += 1
            console.print(f"[red]unexpected: exit {code}, expected {expected}[/]")
    console.rule()
    console.print(
        f"demo finished in {time.monotonic() - started:.1f} s; "
        f"{'all outcomes as expected' if not surprises else f'{surprises} unexpected outcome(s)'}"
    )
    raise typer.Exit(1 if surprises else 0)


def register(app: typer.Typer) -> None:
    app.command()(demo)
