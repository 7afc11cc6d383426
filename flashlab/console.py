"""Shared terminal output for the CLI: one rich console, one-line errors, JSON emission."""

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


class UserError(Exception):
    """Bad input or environment: printed as one line, exit 2, never a traceback."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def die(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    # escape: a message may hold brackets (`flashlab[ray]`, list reprs) that rich would eat as markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise SystemExit(code)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
