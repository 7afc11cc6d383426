"""CI outputs of a command: `--junit FILE`, `--summary-md FILE`, and the GitHub job summary.

When `$GITHUB_STEP_SUMMARY` is set (GitHub Actions sets it for every step), the markdown a
command would write with `--summary-md` is appended there too, without a flag. docs/CI.md shows
a workflow that uses all three.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Annotated
from typing import Any

import typer

from flashlab.commands.errors import error_exit_code
from flashlab.console import err_console
from flashlab.core.errors import UserError
from flashlab.core.rundir import write_text_atomic

if TYPE_CHECKING:  # the analysis modules and check registry load only when a file is written
    from flashlab.analysis.junit import Suite

GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def check_output_path(path: Path | None, flag: str) -> None:
    """Refuse an output path that cannot be written, before a long run (exit 2)."""
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{flag}: {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UserError(f"{flag}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"{flag}: directory {path.parent} is not writable")


def _output_file_option(flag: str, help: str) -> Any:
    """A `FLAG FILE` option alias whose path is checked while the command line is parsed (its
    callback), so every command that takes it refuses a bad one before anything runs (exit 2)."""

    def check(value: Path | None) -> Path | None:
        check_output_path(value, flag)
        return value

    return Annotated[Path | None, typer.Option(flag, metavar="FILE", help=help, callback=check)]


JunitOption = _output_file_option(
    "--junit", "Write JUnit XML: one testcase per hypothesis clause and per consistency check."
)
SummaryMdOption = _output_file_option(
    "--summary-md", "Write a markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)."
)


def write_ci_outputs(
    suites: list[Suite], markdown: str, junit: Path | None, summary_md: Path | None, quiet: bool
) -> None:
    """Write what was asked for; append the markdown to the GitHub job summary when there is one."""
    # start-up cost: only this path pays for the analysis modules and the check registry
    from flashlab.analysis.junit import write_junit

    if junit is not None:
        write_junit(junit, suites)
    if summary_md is not None:
        write_text_atomic(summary_md, markdown)
    step_summary = os.environ.get(GITHUB_STEP_SUMMARY)
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(markdown + "\n")
    if not quiet:
        for label, path in (("junit", junit), ("summary", summary_md)):
            if path is not None:
                err_console.print(f"[dim]{label}: {path}[/]")


def write_error_outputs(
    name: str, exc: BaseException, junit: Path | None, summary_md: Path | None
) -> None:
    """A command that ended without a verdict still leaves CI a JUnit error and a summary line."""
    # start-up cost: only this path pays for the analysis modules and the check registry
    from flashlab.analysis.junit import error_suite

    if isinstance(exc, typer.Exit):
        code, message = exc.exit_code, "interrupted before a verdict"
    else:
        code, message = error_exit_code(exc)
    markdown = f"## flashlab `{name}`: 💥 no verdict (exit {code})\n\n{message}\n"
    try:
        write_ci_outputs([error_suite(name, message)], markdown, junit, summary_md, quiet=True)
    except OSError as write_error:  # the original error matters more than this one
        err_console.print(f"[dim]could not write CI outputs: {write_error}[/]")
