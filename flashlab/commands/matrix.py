"""`flashlab matrix`: run a strategy x fault x durability grid and render matrix.html."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Annotated
from typing import Any

import typer

from flashlab.chaos.faults import fault_names
from flashlab.commands.ci import JunitOption
from flashlab.commands.ci import SummaryMdOption
from flashlab.commands.ci import write_ci_outputs
from flashlab.commands.cpus import CpusOpt
from flashlab.commands.cpus import IsolationOpt
from flashlab.commands.cpus import isolation_overrides
from flashlab.commands.run import CellRepeatOpt
from flashlab.commands.run import load_with_overrides
from flashlab.console import console
from flashlab.console import emit_json
from flashlab.console import titled_table
from flashlab.core.contract import Strategy
from flashlab.core.errors import EXIT_CODES_HELP
from flashlab.core.errors import UserError
from flashlab.core.platform import DURABILITY_MODES

EPILOG = (
    "Examples:\n\n"
    "  flashlab matrix --strategies lua,lock --faults none,redis-kill --durability none,aof-always\n\n"
    "  flashlab matrix --base matrix-base --shoppers 1000 --json\n\n"
    "  flashlab matrix --strategies lua,lock --faults none --durability none --repeat 3\n\n"
    "  flashlab matrix --strategies lua,queue,lock+rl --faults none --durability none\n\n"
    "  flashlab matrix --strategies lua --faults none --junit matrix.xml --summary-md matrix.md\n\n"
    "A cell's expected verdict: naive -> fail (oversell); redis-kill/restart without aof-always -> any; "
    "else pass. --repeat N makes each cell a trial set (median and 95% CI of p99 and throughput; "
    "the set's verdict, see `flashlab run --help`).\n\n"
    "Exit 1 if a cell expected to pass fails, else 4 if a cell could not run, else 3 if "
    "one was inconclusive. " + EXIT_CODES_HELP
)


def _split(value: str, flag: str, allowed: list[str]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise UserError(
            f"{flag}: unknown value(s) {', '.join(bad) or '(empty)'} (allowed: {', '.join(allowed)})"
        )
    return items


STRATEGIES = ",".join(s.value for s in Strategy)  # every registered one
StrategiesOpt = Annotated[
    str,
    typer.Option(
        help=f"Comma-separated strategies (of {STRATEGIES}); `<name>+rl` = that strategy with "
        "the rate limit on."
    ),
]
FaultsOpt = Annotated[
    str, typer.Option(help="Comma-separated faults (`flashlab faults`); 'none' = no fault.")
]
DurabilitiesOpt = Annotated[
    str, typer.Option(help=f"Comma-separated durability modes (of {','.join(DURABILITY_MODES)}).")
]


def matrix(
    strategies: StrategiesOpt = STRATEGIES,
    faults: FaultsOpt = "none,redis-kill,worker-kill",
    durability: DurabilitiesOpt = "none,aof-always",
    base: Annotated[
        Path, typer.Option(help="Experiment file or shipped name every cell starts from.")
    ] = Path("matrix-base"),
    shoppers: Annotated[int | None, typer.Option(help="Shoppers per cell (bounded).")] = None,
    stock: Annotated[int | None, typer.Option(help="Stock per cell.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Matrix directory (default reports/matrix-<time>).")
    ] = None,
    repeat: CellRepeatOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print matrix.json cells.")] = False,
    isolation: IsolationOpt = None,
    cpus: CpusOpt = None,
    junit: JunitOption = None,
    summary_md: SummaryMdOption = None,
) -> None:
    """Run every strategy through every fault under every durability mode."""
    # start-up cost: only this path pays for redis, httpx, prometheus_client
    from flashlab.lab.matrix import NO_FAULT
    from flashlab.lab.matrix import strategy_variants

    strategy_list = _split(
        strategies, "--strategies", strategy_variants([s.value for s in Strategy])
    )
    fault_list = _split(faults, "--faults", [NO_FAULT, *fault_names()])
    durability_list = _split(durability, "--durability", list(DURABILITY_MODES))
    if shoppers is not None and not 1 <= shoppers <= 20_000:
        raise UserError("--shoppers: must be between 1 and 20000 per matrix cell")
    base_exp = load_with_overrides(
        base,
        {
            "scenario.shoppers": shoppers,
            "product.stock": stock,
            "repeat": repeat,
            **isolation_overrides(isolation, cpus),
        },
    )
    out_dir = out or Path("reports") / f"matrix-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"--out: {out_dir} already exists and is not empty")
    axes = (strategy_list, fault_list, durability_list)
    _run_and_print(base_exp, axes, out_dir, json_output, (junit, summary_md))


def _run_and_print(
    base_exp: Any,
    axes: tuple[list[str], list[str], list[str]],
    out_dir: Path,
    json_output: bool,
    ci_outputs: tuple[Path | None, Path | None],
) -> None:
    """Run the cells under a progress bar, write the matrix report, print, exit by the cells."""
    # start-up cost: only this path pays for matplotlib, jinja2, redis
    from rich.progress import Progress

    from flashlab.analysis.report import write_matrix_report
    from flashlab.lab.matrix import matrix_exit_code
    from flashlab.lab.matrix import run_matrix

    total = len(axes[0]) * len(axes[1]) * len(axes[2])
    with Progress(console=console, transient=True, disable=json_output) as bar:
        task = bar.add_task("matrix", total=total)

        def on_cell(cell, index: int, n: int) -> None:
            bar.update(
                task,
                completed=index,
                description=f"{cell.strategy} × {cell.fault} × {cell.durability}",
            )

        cells = run_matrix(base_exp, *axes, out_dir, on_cell, base_exp.repeat)
        bar.update(task, completed=total)

    html = write_matrix_report(out_dir)
    rows = [c.__dict__ | {"unexpected": c.unexpected} for c in cells]
    if json_output:
        emit_json(rows)
    else:
        _print_cells(cells)
        console.print(f"matrix: [bold]{out_dir / 'matrix.json'}[/]  report: [bold]{html}[/]")
    _write_matrix_ci_outputs(out_dir, rows, str(html), *ci_outputs, json_output)
    raise typer.Exit(matrix_exit_code(cells))


def _write_matrix_ci_outputs(
    out_dir: Path,
    rows: list[dict],
    report: str,
    junit: Path | None,
    summary_md: Path | None,
    quiet: bool,
) -> None:
    # start-up cost: only this path pays for the analysis modules and the check registry
    from flashlab.analysis.junit import matrix_suites
    from flashlab.analysis.markdown import matrix_markdown

    markdown = matrix_markdown(rows, out_dir.name, report)
    write_ci_outputs(matrix_suites(out_dir, rows), markdown, junit, summary_md, quiet)


def _print_cells(cells) -> None:
    numbers = ("oversell", "lost", "p99 ms")
    columns = ("strategy", "fault", "durability", "verdict", "expected", *numbers)
    table = titled_table("strategy × fault × durability", columns, right=numbers)
    for c in cells:
        style = "red" if c.unexpected else ("green" if c.verdict == "pass" else "yellow")
        if c.inconclusive:
            style = "yellow"
        p99 = "—" if c.p99_ms is None else f"{c.p99_ms:,.0f}"
        if c.p99_ci_low is not None:
            p99 += f" [{c.p99_ci_low:,.0f}, {c.p99_ci_high:,.0f}]"
        table.add_row(
            c.strategy,
            c.fault,
            c.durability,
            f"[{style}]{c.verdict}[/]",
            c.expected,
            str(c.oversell),
            str(c.lost_acknowledged),
            p99,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(matrix)
