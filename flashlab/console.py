"""Shared terminal output for the CLI: one rich console, one-line errors, JSON emission."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

# Exit codes of every command that judges (run, check, compare, matrix); documented in --help,
# the README and docs/METHOD.md.
EXIT_OK = 0  # the hypothesis holds
EXIT_VERDICT_FAIL = 1  # it does not (or: a compare gate found a regression)
EXIT_BAD_INPUT = 2  # bad input: one line naming the field or flag
EXIT_INCONCLUSIVE = 3  # a timing clause could not be judged: the measurement was untrusted

VERDICT_EXIT = {"pass": EXIT_OK, "fail": EXIT_VERDICT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}
EXIT_CODES_HELP = "Exit codes: 0 pass, 1 fail, 2 bad input, 3 inconclusive (timings untrusted)."


def verdict_exit_code(verdict: str) -> int:
    """pass -> 0, fail -> 1, inconclusive -> 3; anything unknown counts as a failure."""
    return VERDICT_EXIT.get(verdict, EXIT_VERDICT_FAIL)


class UserError(Exception):
    """Bad input or environment: printed as one line, exit 2, never a traceback."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def die(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise SystemExit(code)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
