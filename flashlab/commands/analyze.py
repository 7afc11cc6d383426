"""`flashlab check` and `flashlab report`: judge and render saved run directories (read-only on the run's evidence)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flashlab.console import console
from flashlab.console import emit_json
from flashlab.core.errors import EXIT_CODES_HELP
from flashlab.core.errors import UserError
from flashlab.core.errors import verdict_exit_code
from flashlab.core.rundir import SUMMARY
from flashlab.core.rundir import RunDirError
from flashlab.core.rundir import load_run
from flashlab.core.rundir import write_json_atomic


def _load(run_dir: Path):
    try:
        return load_run(run_dir)
    except RunDirError as exc:
        raise UserError(str(exc)) from None


def check(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory (reports/<run-id>) or a trial set.")
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    write: Annotated[bool, typer.Option(help="Rewrite summary.json with the fresh result.")] = True,
) -> None:
    """Re-run the checker and statistics on a saved run; exit code is the verdict (0 pass, 1 fail, 3 inconclusive).

    Examples:

      flashlab check reports/20261125-101500-lua-ab12

      flashlab check reports/20261125-101500-lua-ab12 --json | jq .checks

      flashlab check reports/20261125-101500-lua-x5-ab12      # a trial set (run --repeat)
    """
    # start-up cost: only this path pays for matplotlib, prometheus_client
    from flashlab.analysis.trials import is_trial_set

    if is_trial_set(run_dir):
        _check_set(run_dir, json_output, write)
    run = _load(run_dir)  # fail fast, before the heavier imports

    # start-up cost: only this path pays for prometheus_client
    from flashlab.analysis.summary import summarize
    from flashlab.commands.display import print_summary

    summary = summarize(run)
    if write:
        write_json_atomic(run_dir / SUMMARY, summary)
    if json_output:
        emit_json(summary)
    else:
        print_summary(summary, str(run_dir))
        failed = summary.get("failed_checks") or []
        if failed:
            console.print(f"[red]checks failing:[/] {', '.join(failed)}")
        if unknown := summary.get("unknown_checks") or []:
            console.print(f"[yellow]checks that could not run (unknown):[/] {', '.join(unknown)}")
    raise typer.Exit(verdict_exit_code(summary.get("verdict")))


def _check_set(set_dir: Path, json_output: bool, write: bool) -> None:
    """Re-judge a trial set from its trials' summaries; exit code is the set's verdict."""
    # start-up cost: only this path pays for matplotlib, jinja2, prometheus_client
    from flashlab.analysis.outputs import write_set_outputs
    from flashlab.analysis.trials import load_set
    from flashlab.analysis.trials import summarize_set
    from flashlab.commands.display import print_trial_set

    try:
        result = (
            write_set_outputs(set_dir, require_complete=True)
            if write
            else summarize_set(load_set(set_dir))
        )
    except RunDirError as exc:
        raise UserError(str(exc)) from None
    if json_output:
        emit_json(result)
    else:
        print_trial_set(result, str(set_dir))
    raise typer.Exit(verdict_exit_code(result["verdict"]))


def report(
    path: Annotated[
        Path,
        typer.Argument(help="A run directory, a trial set, or a matrix directory with --matrix."),
    ],
    matrix: Annotated[
        bool, typer.Option("--matrix", help="Render matrix.html for a matrix directory.")
    ] = False,
    open_it: Annotated[
        bool, typer.Option("--open", help="Open the written page in the default browser.")
    ] = False,
) -> None:
    """(Re)generate report.html for a run, trials.html for a trial set, or matrix.html for a matrix.

    Examples:

      flashlab report reports/20261125-101500-lua-ab12

      flashlab report reports/20261125-101500-lua-ab12 --open   # and show it ($BROWSER, or the default)

      flashlab report reports/20261125-101500-lua-x5-ab12     # a trial set: trials.*

      flashlab report --matrix reports/matrix-20261125-1030
    """
    # start-up cost: only this path pays for matplotlib, jinja2, prometheus_client
    from flashlab.analysis.report import write_matrix_report
    from flashlab.analysis.report import write_report
    from flashlab.analysis.trials import is_trial_set

    if is_trial_set(path) and not matrix:
        out = _write_set(path)
    elif matrix:
        if not (path / "matrix.json").exists():
            raise UserError(f"{path}: no matrix.json (is this a `flashlab matrix` directory?)")
        out = write_matrix_report(path)
    else:
        _load(path)
        out = write_report(path)
    console.print(f"report: [bold]{out}[/]")
    if open_it:
        _open_in_browser(out)


def _open_in_browser(page: Path) -> None:
    """The page in the user's browser ($BROWSER, else the system default); one line when none."""
    # start-up cost: only --open pays for webbrowser (it probes for browsers on import)
    import webbrowser

    if not webbrowser.open(page.resolve().as_uri()):
        raise UserError(f"--open: no browser to open {page} (set $BROWSER)")


def _write_set(set_dir: Path) -> Path:
    """trials.parquet/json/html of a complete trial set, rewritten; the path of trials.html."""
    # start-up cost: only this path pays for matplotlib, jinja2, prometheus_client
    from flashlab.analysis.outputs import write_set_outputs
    from flashlab.analysis.trials import TRIALS_HTML

    try:
        write_set_outputs(set_dir, require_complete=True)
    except RunDirError as exc:
        raise UserError(str(exc)) from None
    return set_dir / TRIALS_HTML


def register(app: typer.Typer) -> None:
    app.command(epilog=EXIT_CODES_HELP)(check)
    app.command()(report)
