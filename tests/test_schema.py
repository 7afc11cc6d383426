"""The output contract: shipped JSON Schemas equal the models', a schema change needs a version bump,
and real files (every shipped experiment, a summary.json, a manifest.json) validate against them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from support import run_flashlab

from flashlab.analysis.summary import summarize
from flashlab.core.rundir import SCHEMA_VERSION
from flashlab.core.rundir import load_run
from flashlab.lab import json_schemas
from flashlab.testing.synthetic import Outage
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "tests" / "data" / "schema_versions.json"
NAMES = sorted(json_schemas.SCHEMAS)


@pytest.mark.parametrize("name", NAMES)
def test_schema_change_needs_a_version_bump(name: str) -> None:
    """tests/data/schema_versions.json records each version's schema hash; never rewrite an entry."""
    recorded = json.loads(VERSIONS.read_text())[name]
    current = json_schemas.content_hash(json_schemas.generate(name))
    known = recorded.get(str(SCHEMA_VERSION))
    assert known is not None, (
        f"SCHEMA_VERSION {SCHEMA_VERSION} has no recorded {name} hash: add "
        f'"{SCHEMA_VERSION}": "{current}" under "{name}" in {VERSIONS.name}'
    )
    assert known == current, (
        f"the {name} schema changed without a version bump: bump SCHEMA_VERSION in "
        f"analysis/rundir.py, record the new hash in {VERSIONS.name}, run "
        f"`flashlab schema {name} --write`"
    )


@pytest.mark.parametrize("name", NAMES)
def test_shipped_schema_is_the_generated_one(name: str) -> None:
    shipped = json_schemas.shipped_path(name).read_text(encoding="utf-8")
    assert shipped == json_schemas.render(json_schemas.generate(name)), (
        f"flashlab/schemas/{name}.json is stale: run `flashlab schema {name} --write`"
    )
    assert json.loads(shipped)[json_schemas.VERSION_KEY] == SCHEMA_VERSION


def test_schema_command_prints_the_shipped_schema() -> None:
    proc = run_flashlab("schema", "summary", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == json_schemas.shipped_path("summary").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_experiment_validates_against_the_experiment_schema(path: Path) -> None:
    schema = json.loads(json_schemas.shipped_path("experiment").read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_experiment_schema_refuses_unknown_fields() -> None:
    schema = json.loads(json_schemas.shipped_path("experiment").read_text())
    with pytest.raises(jsonschema.ValidationError, match="bogus"):
        jsonschema.validate({"name": "x", "bogus": 1}, schema)


def test_summary_and_manifest_carry_the_version_and_summary_validates(tmp_path: Path) -> None:
    write_synthetic(tmp_path, SyntheticSpec(plant={"oversell": 2}, outage=Outage(0.2, 0.4)))
    summary = summarize(load_run(tmp_path))
    assert summary["schema_version"] == SCHEMA_VERSION
    jsonschema.validate(summary, json.loads(json_schemas.shipped_path("summary").read_text()))
    # A summary missing a typed key, or with a verdict outside the three values, does not.
    for broken in (
        {**summary, "verdict": "maybe"},
        {k: v for k, v in summary.items() if k != "checks"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(
                broken, json.loads(json_schemas.shipped_path("summary").read_text())
            )


def test_real_run_files_carry_the_version(smoke_run: Path) -> None:
    for name in ("manifest.json", "summary.json"):
        assert json.loads((smoke_run / name).read_text())["schema_version"] == SCHEMA_VERSION, name
    summary = json.loads((smoke_run / "summary.json").read_text())
    jsonschema.validate(summary, json.loads(json_schemas.shipped_path("summary").read_text()))


def test_summary_model_accepts_the_keys_other_features_add(tmp_path: Path) -> None:
    """verdict_reasons, isolation, aborted, steady_state, guards (docs: iface) are typed now."""
    from flashlab.analysis.summary_schema import SummaryModel

    write_synthetic(tmp_path, SyntheticSpec())
    summary = summarize(load_run(tmp_path)) | {
        "verdict": "inconclusive",
        "verdict_reasons": ["clause 'latency_ms.p99 < 800' inconclusive: load generator unhealthy"],
        "isolation": {
            "mode": "auto",
            "requested": True,
            "applied": False,
            "stack_cpus": [0],
            "load_cpus": [1],
            "reason": "one core",
        },
        "aborted": {"by": "guard", "guard": "oversell_live > 0", "t_s": 1.23, "reason": "x"},
        "steady_state": {"before": {"ok": True}},
        "guards": [{"guard": "oversell_live > 0", "tripped": True}],
    }
    model = SummaryModel.model_validate(summary)
    assert model.aborted is not None and model.aborted.by == "guard"
    with pytest.raises(ValueError, match="mode"):
        SummaryModel.model_validate(summary | {"isolation": {**summary["isolation"], "mode": "x"}})
