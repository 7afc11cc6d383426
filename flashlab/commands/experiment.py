"""`flashlab validate`, `flashlab experiments` and `flashlab faults`: check experiment files, list the shipped ones and the fault catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from typing import Any

import typer
from rich.table import Table

from flashlab.commands.faults import faults
from flashlab.commands.run import load_with_overrides
from flashlab.console import console
from flashlab.console import emit_json
from flashlab.core.errors import UserError


def validate(
    files: Annotated[list[Path], typer.Argument(help="Experiment or target YAML files.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the normalised experiments.")
    ] = False,
) -> None:
    """Validate experiment files and target files; the first error names the field and the
    allowed values.

    Examples:

      flashlab validate experiments/*.yaml

      flashlab validate targets/*.yaml experiments/targets/*.yaml
    """
    loaded = [_load_any(path) for path in files]  # raises UserError -> exit 2
    if json_output:
        emit_json({str(p): e.model_dump(mode="json") for p, e in zip(files, loaded, strict=True)})
        return
    for path, item in zip(files, loaded, strict=True):
        console.print(f"[green]ok[/] {path}: {_describe(item)}")


def _load_any(path: Path) -> Any:
    """An experiment, or a target file (a file with `buy:`/`answers:` and no `scenario:`)."""
    # start-up cost: only this path pays for the target-file models (pydantic)
    from flashlab.core.target import TargetError
    from flashlab.core.target import load_target
    from flashlab.core.target import looks_like_target
    from flashlab.core.target import read_yaml

    if path.suffix in (".yaml", ".yml") and path.is_file():
        try:
            if looks_like_target(read_yaml(path)):
                return load_target(path)
        except TargetError as exc:
            raise UserError(str(exc)) from None
    return load_with_overrides(path, {})


def _describe(item: Any) -> str:
    # start-up cost: only this path pays for the target-file models (pydantic)
    from flashlab.core.target import TargetSpec

    if isinstance(item, TargetSpec):
        roles = ", ".join(f"{r.value}={n}" for r, n in item.roles().items()) or "no roles"
        truth = item.truth.source if item.truth else "none"
        facts = ", ".join(sorted(f.value for f in item.facts())) or "none"
        return (
            f"target {item.name} · {len(item.answers)} answer rule(s) · truth {truth} · "
            f"roles {roles} · offers {facts}"
        )
    backend = (
        f"target {item.target.name}"
        if item.target
        else f"{item.product.strategy} · {item.stack.platform}"
    )
    return (
        f"{backend} · {item.scenario.shoppers} shoppers · stock {item.product.stock} · "
        f"{len(item.faults)} fault(s) · {len(item.guards)} guard(s)"
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
    # start-up cost: only this path pays for redis, orjson
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
    app.command(epilog="Example:\n\n  flashlab faults --json | jq '.[].name'")(faults)
