"""Shared terminal output for the CLI: one rich console, the exit codes, one-line errors, JSON emission.

Exit codes mean one thing each, on every command (README "Exit codes", docs/CI.md):

    0  pass          the steady-state hypothesis holds (or the command did what it was asked)
    1  fail          the hypothesis does not hold (a verdict, not an error)
    2  bad input     a flag, an experiment file or a run directory is wrong; one line names it
    3  inconclusive  the run could not decide (e.g. the load generator was unhealthy)
    4  infra error   the stack or Docker could not start, a component died outside a fault
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

EXIT_OK = 0
EXIT_VERDICT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INCONCLUSIVE = 3
EXIT_INFRA = 4
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM before a verdict existed (the shell's 128 + SIGINT)

VERDICT_EXIT = {"pass": EXIT_OK, "fail": EXIT_VERDICT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}
MAX_ERROR_CHARS = 600  # one line in a CI log, not a wall of text

EXIT_CODES_HELP = (
    "Exit codes: 0 pass, 1 fail (hypothesis does not hold), 2 bad input, 3 inconclusive, "
    "4 infrastructure error (stack or Docker could not start)."
)


def verdict_exit_code(verdict: str | None) -> int:
    """The exit code a verdict stands for; an unknown or missing verdict is no pass (fail)."""
    return VERDICT_EXIT.get(str(verdict), EXIT_VERDICT_FAIL)


class UserError(Exception):
    """Bad input or environment: printed as one line, exit 2 (or `code`), never a traceback."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def one_line(message: str) -> str:
    """A message as one line: its lines joined with ' | ', bounded in length."""
    parts = [part.strip() for part in str(message).splitlines() if part.strip()]
    text = " | ".join(parts)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def print_error(message: str) -> None:
    # escape(): an exception's text may hold "[...]" that rich would read as markup.
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", soft_wrap=True)


def die(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    print_error(message)
    raise SystemExit(code)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
