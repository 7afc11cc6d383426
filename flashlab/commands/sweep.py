"""`flashlab sweep`: a grid over experiment fields (`--set path=v1,v2`), cells on shared stacks, sweep.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from typing import Any

import pandas as pd
import typer
from rich.table import Table

from flashlab.commands.cpus import CpusOpt
from flashlab.commands.cpus import IsolationOpt
from flashlab.commands.cpus import isolation_overrides
from flashlab.commands.run import CellRepeatOpt
from flashlab.commands.run import load_with_overrides
from flashlab.console import console
from flashlab.console import emit_json
from flashlab.core.errors import EXIT_OK

EPILOG = (
    "Examples:\n\n"
    "  flashlab sweep experiments/race-window.yaml --set product.settings.naive_delay_ms=0,1,2,5\n\n"
    "  flashlab sweep experiments/race-window.yaml --set product.settings.naive_delay_ms=0,2 "
    "--set scenario.shoppers=500,2000 --repeat 3\n\n"
    "  flashlab sweep experiments/lua.yaml --set stack.workers=1,2,4 --set product.strategy=lua,lock\n\n"
    "Each --set is a dotted field of the experiment (as in its YAML; `faults.0.at_s` indexes a "
    "list) and its comma-separated values (read as YAML scalars). Every cell is validated before "
    "anything runs. Cells that need the same stack run on one stack (a new one per distinct "
    "`stack.*`/`isolation.*`). More than 50 cells needs --yes.\n\n"
    "Writes <out>/sweep.json (manifest, complete=true last), one run directory (or trial set "
    "with --repeat) per cell, sweep.parquet (one row per cell; CI columns when repeated) and "
    "sweep.html (a plot per metric against the swept values). A sweep measures; it does not "
    "judge: each cell's verdict is in sweep.parquet and sweep.html.\n\n"
    "Exit codes: 0 every cell ran (whatever its verdict), 2 bad input, 4 infrastructure error "
    "(a stack could not start), 130 interrupted."
)


def sweep(
    experiment: Annotated[Path, typer.Argument(help="Experiment file every cell starts from.")],
    set_: Annotated[
        list[str],
        typer.Option(
            "--set", help="PATH=V1,V2,... (repeatable): a dotted experiment field and its values."
        ),
    ],
    repeat: CellRepeatOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Sweep directory (default reports/<sweep-id>).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Allow more than 50 cells.")] = False,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip each cell's report.html (sweep.html stays).")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print sweep.json's cells.")] = False,
    isolation: IsolationOpt = None,
    cpus: CpusOpt = None,
) -> None:
    """Run an experiment over a grid of field values and plot each metric against them."""
    # start-up cost: only this path pays for matplotlib, jinja2, redis
    from flashlab.lab.sweep_runner import SweepRequest
    from flashlab.lab.sweep_runner import parse_set
    from flashlab.lab.sweep_runner import plan_cells

    sets = [parse_set(text) for text in set_]
    exp = load_with_overrides(experiment, isolation_overrides(isolation, cpus))
    cells = plan_cells(exp, sets, yes)  # bad input exits 2 here, before any stack starts
    request = SweepRequest(
        experiment=exp,
        sets=sets,
        repeat=repeat or exp.repeat,
        out_root=Path("reports"),
        sweep_dir=out,
        yes=yes,
        write_report=not no_report,
    )
    outcome = _run_with_progress(request, len(cells), quiet=json_output)
    if json_output:
        emit_json({"sweep_dir": str(outcome.sweep_dir), "cells": outcome.cells})
    else:
        _print_cells(outcome.sweep_dir)
    raise typer.Exit(EXIT_OK)


def _run_with_progress(request: Any, cells: int, quiet: bool) -> Any:
    """Run the sweep under a progress bar of its cells (none with --json)."""
    # start-up cost: only this path pays for matplotlib, jinja2, redis
    from rich.progress import Progress

    from flashlab.lab.sweep_runner import run_sweep

    with Progress(console=console, transient=True, disable=quiet) as bar:
        task = bar.add_task("sweep", total=cells)

        def on_cell_start(cell: Any, total: int) -> None:
            what = ", ".join(f"{p}={v}" for p, v in cell.values.items())
            bar.update(task, completed=cell.index - 1, description=f"{cell.name}: {what}")

        request.on_cell_start = on_cell_start
        outcome = run_sweep(request)
        bar.update(task, completed=cells)
    return outcome


def _print_cells(sweep_dir: Path) -> None:
    # start-up cost: only this path pays for matplotlib, prometheus_client
    from flashlab.analysis.sweep_results import SWEEP_HTML
    from flashlab.analysis.sweep_results import SWEEP_PARQUET
    from flashlab.analysis.sweep_results import load_manifest

    manifest = load_manifest(sweep_dir)
    frame = pd.read_parquet(sweep_dir / SWEEP_PARQUET)
    paths = [s["path"] for s in manifest["sets"]]
    table = Table(title=f"sweep: {len(frame)} cells", title_justify="left")
    columns = ["cell", *paths, "verdict", "sold", "oversell", "lost_acknowledged", "p99"]
    for col in columns:
        table.add_column(col.rsplit(".", 1)[-1], justify="left" if col == "cell" else "right")
    for row in frame.to_dict("records"):
        table.add_row(*(_text(row[c]) for c in columns))
    console.print(table)
    console.print(
        f"sweep: [bold]{sweep_dir / SWEEP_PARQUET}[/]  report: [bold]{sweep_dir / SWEEP_HTML}[/]"
    )


def _text(value: object) -> str:
    if value is None or value != value:  # NaN != NaN: not measured
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
    return str(value)


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(sweep)
