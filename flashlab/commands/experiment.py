"""`flashlab validate`, `flashlab experiments` and `flashlab faults`: check experiment files, list the shipped ones and the fault catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flashlab.console import console
from flashlab.console import emit_json


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


def experiments(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print name, description and file as JSON.")
    ] = False,
) -> None:
    """List the experiments shipped with flashlab; run one by name with `flashlab run NAME`.

    Examples:

      flashlab experiments

      flashlab run smoke --json
    """
    from rich.table import Table

    from flashlab.lab.experiment import describe_shipped

    rows = describe_shipped()
    if json_output:
        emit_json(rows)
        return
    table = Table(title="shipped experiments (flashlab run NAME)")
    table.add_column("name", style="bold")
    table.add_column("description")
    for row in rows:
        table.add_row(row["name"], row["description"])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command(epilog="Example:\n\n  flashlab experiments --json | jq -r '.[].name'")(experiments)
    try:
        from flashlab.commands.faults import faults
    except ImportError:  # pragma: no cover - while the chaos module is being built
        return
    app.command(epilog="Example:\n\n  flashlab faults --json | jq '.[].name'")(faults)
