"""Shared terminal output for the CLI: one rich console, one-line errors, JSON emission."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console

from flashlab.core.errors import EXIT_BAD_INPUT

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def die(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise SystemExit(code)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
