"""The CI examples are real: the GitHub workflow and the GitLab job validate against their
schemas, and every flashlab command they run exists with every option they pass.

The schemas are the ones `check-jsonschema` vendors (SchemaStore's github-workflows and
gitlab-ci), read offline. actionlint would lint more, but its PyPI package downloads its binary
from GitHub when installed, which this machine cannot reach: docs/CI.md says so.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml
from support import ROOT
from support import run_flashlab

from flashlab.core.rundir import SCHEMA_VERSION

WORKFLOW = ROOT / ".github" / "workflows" / "flashlab.yml"
CI_DOC = ROOT / "docs" / "CI.md"


def _schema(name: str) -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / f"{name}.json").read_text(encoding="utf-8"))


def _gitlab_example() -> dict[str, Any]:
    text = CI_DOC.read_text()
    block = text.split("## GitLab CI", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block)


def _flashlab_commands(doc: dict[str, Any]) -> list[list[str]]:
    """Every `flashlab ...` command line the file runs, split like a shell would."""
    scripts: list[str] = []
    for job in doc.get("jobs", {}).values():
        scripts += [step["run"] for step in job.get("steps", []) if "run" in step]
    for key, job in doc.items():
        if isinstance(job, dict) and "script" in job and key != "jobs":
            scripts += job["script"]
    out = []
    for script in scripts:
        for line in script.replace("\\\n", " ").split("\n"):
            words = shlex.split(line)
            if words and words[0].endswith("flashlab"):
                out.append(words[1:])
    return out


def test_the_github_workflow_is_valid_against_the_workflow_schema() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    # YAML reads the key `on` as True; the schema (like GitHub) wants the string.
    doc["on"] = doc.pop(True)
    jsonschema.validate(doc, _schema("github-workflows"))
    steps = doc["jobs"]["smoke"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    assert any(u.startswith("mikepenz/action-junit-report@") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "reports/smoke/" in upload["with"]["path"] and upload["if"] == "always()"


def test_the_gitlab_example_is_valid_against_gitlabs_schema() -> None:
    doc = _gitlab_example()
    jsonschema.validate(doc, _schema("gitlab-ci"))
    assert doc["flashlab-smoke"]["artifacts"]["reports"]["junit"] == "reports/junit.xml"


@pytest.mark.parametrize("source", ["github", "gitlab"])
def test_every_flashlab_command_in_the_ci_files_exists_with_its_options(source: str) -> None:
    doc = yaml.safe_load(WORKFLOW.read_text()) if source == "github" else _gitlab_example()
    commands = _flashlab_commands(doc)
    assert commands, "no flashlab command found"
    for words in commands:
        command = words[0]
        help_text = run_flashlab(command, "--help", timeout=60)
        assert help_text.returncode == 0, f"flashlab {command}: {help_text.stderr}"
        for option in (w for w in words[1:] if w.startswith("--")):
            assert re.search(rf"{re.escape(option)}\b", help_text.stdout), (command, option)
        for path in (w for w in words[1:] if w.endswith(".yaml")):
            assert (ROOT / path).exists(), path


def test_the_scripts_the_ci_files_call_exist() -> None:
    text = WORKFLOW.read_text() + CI_DOC.read_text()
    for script in set(re.findall(r"scripts/[\w.-]+\.sh", text)):
        assert (ROOT / script).is_file(), script


def test_the_documented_schema_version_is_the_written_one() -> None:
    stated = re.search(r"`schema_version` \(an integer; now `(\d+)`\)", CI_DOC.read_text())
    assert stated and int(stated.group(1)) == SCHEMA_VERSION
