"""`flashlab schema experiment|summary|target`: print the JSON Schema of experiment files, summary.json or target files."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from typing import Annotated
from typing import TypeAlias

import typer

from flashlab.commands.choices import one_of
from flashlab.console import console
from flashlab.lab import json_schemas

if TYPE_CHECKING:
    SchemaName: TypeAlias = str
else:
    SchemaName = one_of(json_schemas.SCHEMAS)

EPILOG = (
    "Examples:\n\n"
    "  flashlab schema experiment > experiment.schema.json   # for your editor's YAML plugin\n\n"
    "  flashlab schema summary | jq '.properties.verdict'\n\n"
    "  flashlab schema target > target.schema.json           # target files (docs/TARGETS.md)\n\n"
    "  flashlab schema summary --write                       # maintainers: refresh the shipped file\n\n"
    "The schemas are also shipped inside the package (flashlab/schemas/*.json); "
    "`x-schema-version` is the output contract's version, also in every summary.json and "
    "manifest.json as `schema_version`."
)


def schema(
    name: Annotated[
        SchemaName, typer.Argument(metavar="NAME", help="Which schema.", show_default=False)
    ],
    write: Annotated[
        bool, typer.Option("--write", help="Rewrite the shipped flashlab/schemas/NAME.json.")
    ] = False,
) -> None:
    """Print the JSON Schema of experiment files, summary.json or target files (from the models)."""
    if write:
        console.print(f"wrote {json_schemas.write(name)}")
        return
    sys.stdout.write(json_schemas.render(json_schemas.generate(name)))


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(schema)
