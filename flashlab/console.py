"""Shared terminal output for the CLI: one rich console, one-line errors, JSON emission.

The exit codes and `UserError` live in flashlab.core.errors (every layer may raise it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from collections.abc import Sequence
from typing import Any
from typing import NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flashlab.core.errors import EXIT_BAD_INPUT

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

MAX_ERROR_CHARS = 600  # one line in a CI log, not a wall of text


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


def titled_table(title: str, columns: Sequence[str], right: Collection[str] = ()) -> Table:
    """A rich table titled on the left with `columns` (those in `right` right-aligned)."""
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    return table


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
