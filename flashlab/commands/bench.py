"""`flashlab bench`: run one benchmark (or all) and append its results line and plot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated
from typing import Any

import typer

from flashlab.bench import BENCHMARKS
from flashlab.bench import bench_names
from flashlab.bench import get_bench
from flashlab.bench.context import BenchContext
from flashlab.bench.context import Size
from flashlab.bench.context import default_paths
from flashlab.bench.measured import ToolError
from flashlab.bench.report import update
from flashlab.bench.results import append_result
from flashlab.commands.choices import ALL
from flashlab.commands.choices import BenchName
from flashlab.console import console
from flashlab.console import emit_json
from flashlab.console import err_console
from flashlab.core.errors import InfraError
from flashlab.core.provenance import require_checkout

EPILOG = (
    "Examples:\n\n"
    "  flashlab bench all                        # the full suite (~6-7 min); appends bench/results.jsonl\n\n"
    "  flashlab bench ceiling --size tiny --json # seconds; writes under reports/bench-tiny/\n\n"
    f"Benchmarks: {', '.join(BENCHMARKS)}. Each reports ratios measured side by "
    "side in one run; docs/BENCHMARKS.md explains them."
)


def bench(
    name: Annotated[
        BenchName, typer.Argument(metavar="NAME", help="A benchmark, or all.", show_default=False)
    ],
    size: Annotated[
        Size, typer.Option(help="tiny = seconds, a harness check; full = the real measurement.")
    ] = "full",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the results lines as JSON.")
    ] = False,
    results: Annotated[
        Path | None,
        typer.Option(
            help="Results file to append to (default: bench/results.jsonl for full, "
            "reports/bench-tiny/results.jsonl for tiny)."
        ),
    ] = None,
    plots: Annotated[
        Path | None, typer.Option(help="Plot directory (default beside results).")
    ] = None,
) -> None:
    """Measure the stack, the simulator and chaos cost as ratios; append one JSON line per benchmark."""
    # The benchmarks append to the repository's bench/results.jsonl and docs/BENCHMARKS.md.
    require_checkout("flashlab bench (it writes bench/results.jsonl and docs/BENCHMARKS.md)")
    names = bench_names() if name == ALL else [name]
    default_results, default_plots = default_paths(size)
    results_path = results or default_results
    plots_dir = plots or (default_plots if results is None else results_path.parent / "plots")
    ctx = BenchContext(
        size=size,
        results_path=results_path,
        plots_dir=plots_dir,
        command=" ".join(["flashlab", "bench", name, f"--size={size}"]),
        log=(lambda msg: err_console.print(f"[dim]{msg}[/]")) if json_output else console.log,
    )
    lines, failed = _run_all(names, ctx)
    if size == "full" and results is None and lines:
        update()  # keep docs/BENCHMARKS.md's table on the latest committed-file results
    if json_output:
        emit_json(lines if name == ALL else (lines[0] if lines else {}))
    else:
        for line in lines:
            _print_line(line)
        console.print(f"results appended to {results_path}; plots in {plots_dir}")
    if failed:
        # A benchmark whose tool broke measured nothing: infrastructure, not a verdict.
        raise InfraError(f"benchmark(s) failed: {'; '.join(failed)}")


def _run_all(names: list[str], ctx: Any) -> tuple[list[dict[str, Any]], list[str]]:
    lines: list[dict[str, Any]] = []
    failed: list[str] = []
    for bench_name in names:
        started = time.monotonic()
        ctx.log(f"bench {bench_name} ({ctx.size}) ...")
        try:
            line = get_bench(bench_name).run(ctx)  # each benchmark module loads on use
        except (ToolError, RuntimeError, OSError) as exc:
            # One benchmark's broken tool must not cost the others their measurements.
            failed.append(f"{bench_name}: {exc}")
            err_console.print(f"[red]bench {bench_name} failed:[/] {exc}", soft_wrap=True)
            continue
        line["elapsed_s"] = round(time.monotonic() - started, 1)
        append_result(ctx.results_path, line)
        lines.append(line)
    return lines, failed


def _print_line(line: dict[str, Any]) -> None:
    met = {True: "[green]met[/]", False: "[red]missed[/]", None: "[yellow]n/a[/]"}
    console.rule(f"[bold]{line['bench']}[/] ({line['size']}, {line['elapsed_s']} s)")
    console.print("ratios: " + ", ".join(f"{k}={v}" for k, v in line["ratios"].items()))
    for key, t in line["targets"].items():
        console.print(f"  {key}: {t['value']} (target {t['target']}) {met[t['met']]}")
    if line.get("plot"):
        console.print(f"  plot: {line['plot']}")


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(bench)
