"""The `flashlab` command line: the root app, with every command group mounted on it.

Every error ends as one line and an exit code that means one thing (flashlab.commands.errors:
2 bad input, 4 infrastructure), never a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from flashlab import __version__
from flashlab.commands import analyze
from flashlab.commands import bench
from flashlab.commands import compare
from flashlab.commands import demo
from flashlab.commands import experiment
from flashlab.commands import matrix
from flashlab.commands import run
from flashlab.commands import schema
from flashlab.commands import sweep
from flashlab.commands import target
from flashlab.commands.errors import FlashlabGroup
from flashlab.commands.stack import app as stack_app
from flashlab.console import console
from flashlab.core.errors import EXIT_CODES_HELP

app = typer.Typer(
    name="flashlab",
    help=(
        "Load-simulation and chaos lab for flash-sale backends (nginx -> FastAPI -> Redis).\n\n"
        "Does the backend sell exactly the stock it has - no more, no lost orders - when "
        "thousands of shoppers hit it at once and its parts fail underneath?"
    ),
    epilog=(
        "Examples:\n\n"
        "  flashlab run experiments/lua.yaml                 # start a stack, run, verdict\n\n"
        "  flashlab run smoke --json                         # CI: exit code is the verdict\n\n"
        "  flashlab experiments                              # the shipped experiments, by name\n\n"
        "  flashlab stack up --detach && flashlab stack status\n\n"
        "  flashlab check reports/<run-id>                   # re-judge a saved run\n\n"
        "  flashlab run experiments/lua.yaml --repeat 5      # trial set: medians + 95% CIs\n\n"
        "  flashlab compare reports/A reports/B              # better / worse / within noise\n\n"
        "  flashlab matrix --strategies lua,lock --faults none,redis-kill\n\n"
        "  flashlab sweep experiments/race-window.yaml --set product.settings.naive_delay_ms=0,2,5\n\n"
        "  flashlab demo                                     # what `make demo` runs\n\n"
        "  flashlab target probe targets/node-lock.yaml      # a backend the lab did not build\n\n"
        + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    cls=FlashlabGroup,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        console.print(f"flashlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """flashlab."""


def _mount() -> None:
    for module in (run, analyze, compare, experiment, matrix, sweep, demo, schema, bench, target):
        module.register(app)
    app.add_typer(
        stack_app,
        name="stack",
        help="Start, inspect and stop a flash-sale stack.",
        epilog=(
            "Examples:\n\n"
            "  flashlab stack up                      # foreground; Ctrl-C stops and reaps it\n\n"
            "  flashlab stack up --detach --workers 4 --durability aof-always\n\n"
            "  flashlab stack status --json\n\n"
            "  flashlab stack down"
        ),
    )


_mount()


def main() -> None:
    """Console-script entry: errors become one red line and a meaningful exit code (FlashlabGroup)."""
    if os.name != "posix":
        # Process groups, POSIX signals and PR_SET_PDEATHSIG are how the lab owns its children.
        sys.stderr.write("error: flashlab needs a POSIX system (Linux or macOS)\n")
        raise SystemExit(2)
    app()


if __name__ == "__main__":
    main()
