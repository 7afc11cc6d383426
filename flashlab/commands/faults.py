"""`flashlab faults`: list the fault catalogue (name, parameters with defaults, description)."""

from __future__ import annotations

from typing import Annotated
from typing import Any

import typer
from pydantic_core import PydanticUndefined
from rich.table import Table

from flashlab.chaos.faults import fault_class
from flashlab.chaos.faults import fault_names
from flashlab.console import console
from flashlab.console import emit_json


def _param_rows(name: str) -> list[dict[str, Any]]:
    rows = []
    for field_name, info in fault_class(name).Params.model_fields.items():
        default = None if info.default is PydanticUndefined else info.default
        rows.append(
            {
                "name": field_name,
                "type": getattr(info.annotation, "__name__", str(info.annotation)),
                "default": default,
                "description": info.description or "",
            }
        )
    return rows


def catalogue() -> list[dict[str, Any]]:
    """Every registered fault as plain data (what --json prints)."""
    return [
        {
            "name": name,
            "description": fault_class(name).description,
            "needs_proxy": fault_class(name).needs_proxy,
            # The role a target file must give a process for this fault (docs/TARGETS.md).
            "role": fault_class(name).role,
            "params": _param_rows(name),
        }
        for name in fault_names()
    ]


def faults(
    json: Annotated[bool, typer.Option("--json", help="Print the catalogue as JSON.")] = False,
) -> None:
    """List the faults an experiment can schedule, their parameters and defaults.

    Every fault also takes at_s, duration_s and repeat {every_s, count} in the experiment file.
    """
    entries = catalogue()
    if json:
        emit_json(entries)
        return
    table = Table(title="fault catalogue", title_justify="left", show_lines=True)
    table.add_column("fault", style="bold", no_wrap=True)
    table.add_column("params (default)")
    table.add_column("description")
    for entry in entries:
        params = "\n".join(f"{p['name']}={p['default']!r}" for p in entry["params"]) or "-"
        note = " [dim](via fault proxy)[/]" if entry["needs_proxy"] else ""
        note += f" [dim](a target's role {entry['role']})[/]" if entry["role"] else ""
        table.add_row(entry["name"], params, entry["description"] + note)
    console.print(table)
