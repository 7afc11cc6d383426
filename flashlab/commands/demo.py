"""`flashlab demo` (what `make demo` runs): the reference's oversell (docs/REFERENCE.md), then a safe sale through faults."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from flashlab.commands.cpus import CpusOpt, IsolationOpt, isolation_overrides
from flashlab.console import console, titled_table

DEMO_RUNS = (
    # (shipped experiment name, what a correct lab shows, expected exit code)
    (
        "seed-phase1-naive",
        "naive read-then-write oversells (the reference's phase 1)",
        1,
    ),
    (
        "demo-chaos",
        "lua + AOF always survives a Redis kill and a worker-kill storm",
        0,
    ),
)


def demo(
    shoppers: Annotated[
        int, typer.Option(help="Shoppers per run (bounded).", min=100, max=20_000)
    ] = 5_000,
    out: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("reports"),
    isolation: IsolationOpt = None,
    cpus: CpusOpt = None,
) -> None:
    """Start the local stack, run a flash sale with faults, print the verdict and the HTML report path.

    Example:

      flashlab demo --shoppers 2000 --isolation off
    """
    from flashlab.commands.run import load_with_overrides, run_and_report
    from flashlab.lab.run import RunRequest

    split = isolation_overrides(isolation, cpus)
    started = time.monotonic()
    rows = []
    for path, story, expected in DEMO_RUNS:
        exp = load_with_overrides(
            Path(path),
            {"scenario.shoppers": shoppers, "product.stock": shoppers // 10, **split},
        )
        console.rule(f"[bold]{exp.name}[/]: {story}")
        outcome = run_and_report(RunRequest(experiment=exp, out_root=out), json_output=False)
        rows.append((exp, outcome, expected))
    surprises = _print_demo_table(rows)
    console.print(
        f"demo finished in {time.monotonic() - started:.1f} s; "
        + ("all outcomes as expected" if not surprises else f"{surprises} unexpected outcome(s)")
    )
    raise typer.Exit(1 if surprises else 0)


def _print_demo_table(rows: list) -> int:  # list[(Experiment, RunOutcome, expected exit code)]
    columns = ("run", "strategy", "faults", "sold / stock", "oversell", "lost", "verdict")
    table = titled_table("demo: what each strategy sold", (*columns, "as expected"))
    surprises = 0
    for exp, outcome, expected in rows:
        s = outcome.summary
        ok = outcome.exit_code == expected
        surprises += not ok
        table.add_row(
            exp.name,
            str(exp.product.strategy),
            ", ".join(f.fault for f in exp.faults) or "none",
            f"{s['sold']} / {s['stock_initial']}",
            str(s["oversell"]),
            str(s["lost_acknowledged"]),
            s["verdict"].upper(),
            "[green]yes[/]" if ok else "[red]NO[/]",
        )
    console.rule()
    console.print(table)
    for exp, outcome, _ in rows:
        console.print(f"report ({exp.name}): [bold]{outcome.run_dir / 'report.html'}[/]")
    return surprises


def register(app: typer.Typer) -> None:
    app.command()(demo)
