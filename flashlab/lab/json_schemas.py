"""The JSON Schemas of the output contract, generated from the models and shipped with the package.

Experiment files, target files and summary.json: generated from their pydantic models and
shipped as flashlab/schemas/<name>.json (package data, so editors can validate YAML with them),
tagged with the contract's `SCHEMA_VERSION` (`x-schema-version`).

tests/test_schema.py fails when a model's schema changes and the shipped file or the version does
not follow: bump flashlab.core.rundir.SCHEMA_VERSION, record the new hash in
tests/data/schema_versions.json and run `flashlab schema NAME --write`.

A field that names an entry of a registry (an engine, a platform, a strategy, a client, a fault)
lists the registry's names as its `enum`, marked `x-registry` (flashlab.core.registry). Those
names are open: a new engine is not a change of the contract, so the hash leaves them out and only
the shipped file is regenerated (`flashlab schema experiment --write`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flashlab.core.registry import REGISTRY_KEY

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"  # flashlab/schemas
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
VERSION_KEY = "x-schema-version"


def experiment_schema() -> dict[str, Any]:
    # start-up cost: only this path pays for pandas, pyarrow, numpy
    from flashlab.core.rundir import SCHEMA_VERSION
    from flashlab.lab.experiment import Experiment

    schema = Experiment.model_json_schema()
    # In a file, `target:` is the path of a target file (loaded into the object form).
    target = schema["properties"]["target"]
    target["anyOf"].insert(0, {"type": "string", "description": "path of a target file"})
    schema["title"] = "flashlab experiment file"
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema[VERSION_KEY] = SCHEMA_VERSION
    return schema


def target_schema() -> dict[str, Any]:
    # start-up cost: only this path pays for pandas, pyarrow, numpy
    from flashlab.core.rundir import SCHEMA_VERSION
    from flashlab.core.target import TargetSpec

    schema = TargetSpec.model_json_schema()
    schema["title"] = "flashlab target file"
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema[VERSION_KEY] = SCHEMA_VERSION
    return schema


def summary_schema() -> dict[str, Any]:
    # start-up cost: only this path pays for pandas, pyarrow, numpy
    from flashlab.analysis.summary_schema import summary_json_schema

    return summary_json_schema()


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "experiment": experiment_schema,
    "summary": summary_schema,
    "target": target_schema,
}


def render(schema: dict[str, Any]) -> str:
    """The one text form of a schema (stable key order), as shipped and printed."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(name: str) -> dict[str, Any]:
    return SCHEMAS[name]()


def shipped_path(name: str) -> Path:
    return SCHEMA_DIR / f"{name}.json"


def content_hash(schema: dict[str, Any]) -> str:
    """A digest of what the schema says, without its version tag nor the names of a registry
    (open sets): a change is a new hash."""
    body = _without_registry_names({k: v for k, v in schema.items() if k != VERSION_KEY})
    return hashlib.sha256(render(body).encode()).hexdigest()[:16]


def _without_registry_names(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_registry_names(item) for item in node]
    if not isinstance(node, dict):
        return node
    open_names = REGISTRY_KEY in node
    return {
        k: _without_registry_names(v) for k, v in node.items() if not (open_names and k == "enum")
    }


def write(name: str) -> Path:
    path = shipped_path(name)
    path.write_text(render(generate(name)), encoding="utf-8")
    return path
