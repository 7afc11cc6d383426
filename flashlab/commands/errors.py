"""How every command ends on an error: one line on stderr and an exit code that means one thing.

The line names the cause; the code is the exception's own `exit_code` (2 for bad input, 4 for
infrastructure: the error tree in flashlab.core.errors); never a traceback.

`FlashlabGroup` is the click group class of the root app and of `python -m flashlab.commands.stack`;
`error_exit_code` is the one mapping from exception to exit code.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer._click import exceptions as click_errors  # typer >= 0.29 vendors click as typer._click
from typer.core import TyperGroup

from flashlab.console import print_error
from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import EXIT_INFRA
from flashlab.core.errors import EXIT_INTERRUPTED
from flashlab.core.errors import FlashlabError

DEBUG_ENV = "FLASHLAB_DEBUG"  # set to 1 to get the traceback of an unexpected error


def _usage_line(exc: click_errors.UsageError) -> str:
    where = exc.ctx.command_path if exc.ctx is not None else "flashlab"
    # typer checks values with pydantic, whose ValueError messages start "Value error, ".
    message = exc.format_message().replace("Value error, ", "")
    return f"{where}: {message} (see `{where} --help`)"


def error_exit_code(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception that ended a command."""
    if isinstance(exc, FlashlabError):
        return exc.exit_code, exc.one_line()  # the class says which code (flashlab.core.errors)
    if isinstance(exc, click_errors.UsageError):
        return EXIT_BAD_INPUT, _usage_line(exc)
    if isinstance(exc, click_errors.ClickException):
        return EXIT_BAD_INPUT, exc.format_message()
    if isinstance(exc, OSError):
        return EXIT_INFRA, f"{type(exc).__name__}: {exc}"
    # Not a known kind: most likely a component or the load generator failing in a way nobody
    # typed yet (a bug otherwise); still one line, and the traceback on demand.
    return EXIT_INFRA, f"{type(exc).__name__}: {exc} ({DEBUG_ENV}=1 shows the traceback)"


def bare_flags(command: Any) -> None:
    """A flag takes no value, so its help shows none: typer would print `<bool>` beside every
    flag (--json, --open, --allow-remote...), which reads as if it wanted one."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    make_help = command.get_help_option  # --help is made per call, not listed in params

    def get_help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in (getattr(command, "commands", None) or {}).values():
        bare_flags(sub)


class FlashlabGroup(TyperGroup):
    """The root group: every exception a command raises ends as one line on stderr + an exit code.

    Runs click in non-standalone mode so errors reach us (CliRunner included), then exits the way
    standalone mode would."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        bare_flags(self)
        try:
            result = super().main(*args, **kwargs | {"standalone_mode": False})
            code = result if isinstance(result, int) else 0
        except SystemExit:
            raise  # die() already printed its line
        except click_errors.NoArgsIsHelpError as exc:  # `flashlab` or a group with no args
            exc.show()
            code = 0
        except (typer.Abort, KeyboardInterrupt):
            print_error("interrupted")
            code = EXIT_INTERRUPTED
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            code, message = error_exit_code(exc)
            print_error(message)
        if not standalone_mode:
            return code
        sys.exit(code)
