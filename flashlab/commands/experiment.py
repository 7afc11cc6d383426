"""`flashlab validate` and `flashlab faults`: check experiment files and list the fault catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flashlab.console import console, emit_json


def validate(
    files: Annotated[list[Path], typer.Argument(help="Experiment YAML files.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the normalised experiments.")
    ] = False,
) -> None:
    """Validate experiment files; the first error names the field and the allowed values.

    Examples:

      flashlab validate experiments/*.yaml
    """
    from flashlab.commands.run import load_with_overrides

    loaded = [load_with_overrides(path, {}) for path in files]  # raises UserError -> exit 2
    if json_output:
        emit_json({str(p): e.model_dump(mode="json") for p, e in zip(files, loaded, strict=True)})
        return
    for path, exp in zip(files, loaded, strict=True):
        console.print(
            f"[green]ok[/] {path}: {exp.product.strategy} · {exp.scenario.shoppers} shoppers · "
            f"stock {exp.product.stock} · {len(exp.faults)} fault(s) · {len(exp.guards)} guard(s) · "
            f"{exp.stack.platform}"
        )


def register(app: typer.Typer) -> None:
    app.command()(validate)
    try:
        from flashlab.commands.faults import faults
    except ImportError:  # pragma: no cover - while the chaos module is being built
        return
    app.command(epilog="Example:\n\n  flashlab faults --json | jq '.[].name'")(faults)
