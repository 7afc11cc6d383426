"""`flashlab check` and `flashlab report`: judge and render saved run directories (read-only on the run's evidence)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flashlab.console import EXIT_CODES_HELP, UserError, console, emit_json, verdict_exit_code


def _load(run_dir: Path):
    from flashlab.analysis.rundir import RunDirError, load_run

    try:
        return load_run(run_dir)
    except RunDirError as exc:
        raise UserError(str(exc)) from None


def check(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, e.g. reports/<run-id>.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    write: Annotated[bool, typer.Option(help="Rewrite summary.json with the fresh result.")] = True,
) -> None:
    """Re-run the checker and statistics on a saved run; exit code is the verdict.

    Examples:

      flashlab check reports/20261125-101500-lua-ab12

      flashlab check reports/20261125-101500-lua-ab12 --json | jq .checks
    """
    run = _load(run_dir)  # fail fast, before the heavier imports

    from flashlab.analysis.rundir import SUMMARY, write_json_atomic
    from flashlab.analysis.summary import summarize
    from flashlab.commands.display import print_summary

    summary = summarize(run)
    if write:
        write_json_atomic(run_dir / SUMMARY, summary)
    if json_output:
        emit_json(summary)
    else:
        print_summary(summary, str(run_dir))
        failed = [name for name, c in summary.get("checks", {}).items() if not c.get("ok")]
        if failed:
            console.print(f"[red]checks failing:[/] {', '.join(failed)}")
    raise typer.Exit(verdict_exit_code(summary.get("verdict")))


def report(
    path: Annotated[
        Path, typer.Argument(help="A run directory, or a matrix directory with --matrix.")
    ],
    matrix: Annotated[
        bool, typer.Option("--matrix", help="Render matrix.html for a matrix directory.")
    ] = False,
) -> None:
    """(Re)generate report.html for a run, or matrix.html for a matrix directory.

    Examples:

      flashlab report reports/20261125-101500-lua-ab12

      flashlab report --matrix reports/matrix-20261125-1030
    """
    from flashlab.analysis.report import write_matrix_report, write_report

    if matrix:
        if not (path / "matrix.json").exists():
            raise UserError(f"{path}: no matrix.json (is this a `flashlab matrix` directory?)")
        out = write_matrix_report(path)
    else:
        _load(path)
        out = write_report(path)
    console.print(f"report: [bold]{out}[/]")


def register(app: typer.Typer) -> None:
    app.command(epilog=EXIT_CODES_HELP)(check)
    app.command()(report)
