"""CI-native results: JUnit XML valid against tests/data/junit.xsd, red exactly when the verdict fails,
failure messages "measured X vs expected <op> Y" naming example ids; the markdown summary and the
GitHub job summary; a real smoke run through the CLI writing all three."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from support import run_flashlab

from flashlab.analysis.checker import LOADED_CHECKS
from flashlab.analysis.junit import Case
from flashlab.analysis.junit import Suite
from flashlab.analysis.junit import matrix_suites
from flashlab.analysis.junit import run_suite
from flashlab.analysis.junit import to_xml
from flashlab.analysis.junit import write_junit
from flashlab.analysis.markdown import matrix_markdown
from flashlab.analysis.markdown import run_markdown
from flashlab.analysis.summary import summarize
from flashlab.core.rundir import load_run
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
XSD = xmlschema.XMLSchema(ROOT / "tests" / "data" / "junit.xsd")


def _summary(path: Path, **spec: Any) -> dict[str, Any]:
    write_synthetic(path, SyntheticSpec(**spec))
    return summarize(load_run(path))


def _cases(xml: str) -> dict[str, ET.Element]:
    return {f"{c.get('classname')}/{c.get('name')}": c for c in ET.fromstring(xml).iter("testcase")}


def test_generic_builder_counts_and_validates() -> None:
    suite = Suite("s", time_s=1.5, timestamp="2026-11-30T10:00:00+00:00", properties={"k": "v"})
    suite.add(Case("ok", "s.a"))
    suite.add(Case("bad", "s.a", outcome="failure", message="measured 1 vs expected == 0"))
    suite.add(Case("boom", "s.a", outcome="error", message="stack: redis died"))
    suite.add(Case("later", "s.a", outcome="skipped", message="inconclusive: x"))
    xml = to_xml([suite, Suite("empty")])
    XSD.validate(xml)
    root = ET.fromstring(xml)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    first = root.find("testsuite")
    assert first is not None and first.get("skipped") == "1"


def test_a_failing_clause_reads_measured_vs_expected_with_example_ids(tmp_path: Path) -> None:
    summary = _summary(tmp_path, plant={"oversell": 3})
    assert summary["verdict"] == "fail"
    xml = to_xml([run_suite(summary, "planted")])
    XSD.validate(xml)
    cases = _cases(xml)
    failure = cases["planted.hypothesis/oversell == 0"].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert message.startswith("measured 3 vs expected == 0; examples: ")
    for example in summary["checks"]["oversell"]["examples"][:3]:
        assert example in message
    assert cases["planted.checks/oversell"].find("failure") is not None
    passed = cases["planted.hypothesis/lost_acknowledged == 0"]
    assert passed.find("failure") is None and passed.find("skipped") is None


def test_junit_is_red_exactly_when_the_verdict_fails(tmp_path: Path) -> None:
    """A failing check the hypothesis does not name is skipped, not failed (exit code stays 0)."""
    summary = _summary(tmp_path, plant={"conservation": 2})
    assert summary["verdict"] == "pass" and not summary["checks"]["conservation"]["ok"]
    xml = to_xml([run_suite(summary, "clean-verdict")])
    XSD.validate(xml)
    assert ET.fromstring(xml).get("failures") == "0"
    skipped = _cases(xml)["clean-verdict.checks/conservation"].find("skipped")
    assert skipped is not None and "not in the hypothesis" in skipped.get("message", "")


def test_inconclusive_clause_is_skipped_with_its_reason_and_aborts_fail(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    reason = "clause 'latency_ms.p99 < 800' inconclusive: load generator unhealthy (lag p99 140 ms)"
    clause = {"clause": "latency_ms.p99 < 800", "key": "latency_ms.p99", "op": "<"}
    clause |= {"expected": 800.0, "measured": 950.0, "ok": False, "status": "inconclusive"}
    inconclusive = summary | {
        "verdict": "inconclusive",
        "verdict_reasons": [reason],
        "hypothesis": [clause],
    }
    xml = to_xml([run_suite(inconclusive, "t")])
    XSD.validate(xml)
    skipped = _cases(xml)["t.hypothesis/latency_ms.p99 < 800"].find("skipped")
    assert skipped is not None and skipped.get("message") == f"inconclusive: {reason}"
    assert ET.fromstring(xml).get("failures") == "0"
    # A verdict that fails with every clause passing (an aborted run) still turns the file red.
    aborted = summary | {"verdict": "fail", "verdict_reasons": ["aborted by guard 'g' at t=1.2s"]}
    verdict = _cases(to_xml([run_suite(aborted, "a")]))["a/verdict"].find("failure")
    assert verdict is not None and "aborted by guard" in verdict.get("message", "")


def test_matrix_suites_gate_only_on_cells_expected_to_pass(tmp_path: Path) -> None:
    clean = _summary(tmp_path / "lua-none-none")
    naive = _summary(tmp_path / "naive-none-none", plant={"oversell": 2})
    for name, summary in (("lua-none-none", clean), ("naive-none-none", naive)):
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    cells = [
        {"strategy": "lua", "fault": "none", "durability": "none", "expected": "pass"}
        | {"run_dir": "lua-none-none", "verdict": "pass", "unexpected": False},
        {"strategy": "naive", "fault": "none", "durability": "none", "expected": "fail"}
        | {"run_dir": "naive-none-none", "verdict": "fail", "unexpected": False},
        {"strategy": "lock", "fault": "none", "durability": "none", "expected": "pass"}
        | {"run_dir": "", "verdict": "error", "unexpected": True, "error": "PlatformError: boom"},
    ]
    xml = to_xml(matrix_suites(tmp_path, cells))
    XSD.validate(xml)
    root = ET.fromstring(xml)
    assert (root.get("failures"), root.get("errors")) == ("0", "1")  # naive's oversell expected
    naive_case = _cases(xml)["naive-none-none.hypothesis/oversell == 0"].find("skipped")
    assert naive_case is not None and naive_case.get("message", "").startswith("expected:")
    markdown = matrix_markdown(cells, "m")
    assert "❌ 1 unexpected" in markdown and "PlatformError: boom" in markdown


def test_markdown_summary_names_verdict_failed_clauses_and_checks(tmp_path: Path) -> None:
    summary = _summary(tmp_path, plant={"oversell": 2})
    text = run_markdown(summary, "planted", "reports/x/report.html")
    assert text.startswith("## flashlab `planted`: ❌ FAIL")
    assert "| `oversell == 0` | 2 | == 0 | ❌ fail |" in text
    example = summary["checks"]["oversell"]["examples"][0]
    assert "- **oversell**: 2 " in text and f"`{example}`" in text
    assert "report `reports/x/report.html`" in text


def test_smoke_run_writes_valid_junit_a_summary_and_the_github_step_summary(tmp_path: Path) -> None:
    junit, summary_md, step = tmp_path / "junit.xml", tmp_path / "summary.md", tmp_path / "step.md"
    step.write_text("earlier step\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(step)}
    argv = ["run", str(ROOT / "experiments" / "smoke.yaml"), "--out", str(tmp_path / "run")]
    argv += ["--junit", str(junit), "--summary-md", str(summary_md), "--no-report"]
    proc = run_flashlab(*argv, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    XSD.validate(str(junit))
    root = ET.fromstring(junit.read_text())
    # smoke.yaml: 6 clauses + one case per registered check, none failing.
    expected = str(6 + len(LOADED_CHECKS))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (expected, "0", "0")
    text = summary_md.read_text()
    assert text.startswith("## flashlab `smoke`: ✅ PASS") and "`oversell == 0`" in text
    assert step.read_text() == "earlier step\n" + text + "\n"  # appended, not replaced


def test_bad_output_path_fails_before_the_run(tmp_path: Path) -> None:
    smoke = str(ROOT / "experiments" / "smoke.yaml")
    bad = str(tmp_path / "no" / "such" / "dir" / "j.xml")
    proc = run_flashlab("run", smoke, "--junit", bad, "--out", str(tmp_path / "r"), timeout=60)
    assert proc.returncode == 2 and "--junit" in proc.stderr and "does not exist" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_write_junit_is_atomic_and_leaves_no_partial_file(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "j.xml", [Suite("s", [Case("a", "s")])])
    assert [p.name for p in tmp_path.iterdir()] == ["j.xml"]
    XSD.validate(str(path))


@pytest.mark.parametrize("bad", ["<testsuites><testsuite name='x'/></testsuites>"])
def test_the_schema_is_not_a_rubber_stamp(bad: str) -> None:
    """The XSD refuses a suite without its required counts: validation can fail."""
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        XSD.validate(bad)


def test_matrix_exit_code_orders_verdict_infra_inconclusive() -> None:
    from flashlab.lab.matrix import Cell
    from flashlab.lab.matrix import matrix_exit_code

    def cell(strategy: str, expected: str, verdict: str) -> Cell:
        return Cell(strategy, "none", "none", expected, verdict=verdict)

    assert matrix_exit_code([cell("lua", "pass", "pass"), cell("naive", "fail", "fail")]) == 0
    assert matrix_exit_code([cell("naive", "fail", "pass")]) == 0  # a surprise, not gating
    assert matrix_exit_code([cell("lua", "pass", "inconclusive")]) == 3
    assert (
        matrix_exit_code([cell("lua", "pass", "error"), cell("lock", "pass", "inconclusive")]) == 4
    )
    assert matrix_exit_code([cell("lua", "pass", "fail"), cell("lock", "pass", "error")]) == 1


def test_a_one_cell_matrix_writes_junit_and_summary(tmp_path: Path) -> None:
    junit, summary_md = tmp_path / "matrix.xml", tmp_path / "matrix.md"
    argv = ["matrix", "--strategies", "lua", "--faults", "none", "--durability", "none"]
    argv += ["--base", str(ROOT / "experiments" / "smoke.yaml"), "--out", str(tmp_path / "m")]
    argv += ["--junit", str(junit), "--summary-md", str(summary_md)]
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    proc = run_flashlab(*argv, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    XSD.validate(str(junit))
    suites = ET.fromstring(junit.read_text()).findall("testsuite")
    assert [s.get("name") for s in suites] == ["lua-none-none"]
    assert suites[0].get("failures") == "0" and suites[0].get("errors") == "0"
    expectation = _cases(junit.read_text())["lua-none-none/expected verdict"]
    assert expectation.find("failure") is None and expectation.find("skipped") is None
    assert summary_md.read_text().startswith("## flashlab matrix `m`: ✅ as expected")
