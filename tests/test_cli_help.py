"""--help reads right: flags show no value placeholder, and every command's help renders."""

from __future__ import annotations

import pytest
from support import run_flashlab

COMMANDS = [
    (), ("run",), ("check",), ("report",), ("compare",), ("validate",), ("experiments",),
    ("faults",), ("matrix",), ("sweep",), ("demo",), ("schema",), ("bench",), ("stack", "up"),
    ("stack", "status"), ("stack", "down"), ("target", "probe"), ("target", "init"),
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "flashlab")
def test_help_has_no_bool_placeholder(command: tuple[str, ...]) -> None:
    proc = run_flashlab(*command, "--help", timeout=60, env={"COLUMNS": "100", "PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    assert "<bool>" not in proc.stdout
