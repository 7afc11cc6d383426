"""JUnit XML for CI: a generic builder (suites of test cases) and the mapping of one run's summary.

The format is the de-facto one CI systems read (Jenkins, GitLab, GitHub test-report actions;
tests/data/junit.xsd states it): `<testsuites>` of `<testsuite name tests failures errors
skipped time>` of `<testcase name classname time>`, each with at most one `<failure message>`,
`<error message>` or `<skipped message>`. Any command can build suites (`Suite`, `Case`) and
write them with `write_junit`; `run_suite` maps a summary.json:

- one test case per hypothesis clause: pass; fail -> failure "measured X vs expected <op> Y"
  (with example ids when the clause names a check); inconclusive -> skipped, with the reason;
- one test case per consistency check: a failing check the hypothesis names is a failure; one it
  does not name is skipped ("not in the hypothesis"), so the file is red exactly when the
  verdict is "fail" (exit 1);
- a "verdict" case when the verdict fails for a reason no clause shows (e.g. an aborted run).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Literal

from flashlab.analysis.checker import CHECK_KEYS
from flashlab.analysis.hypothesis import sides
from flashlab.analysis.summary_schema import read_summary
from flashlab.core.rundir import SUMMARY
from flashlab.core.rundir import RunDirError
from flashlab.core.rundir import write_text_atomic

Outcome = Literal["passed", "failure", "error", "skipped"]
MAX_EXAMPLES_IN_MESSAGE = 5


@dataclass
class Case:
    """One `<testcase>`: an outcome, a one-line message, optional detail text and output."""

    name: str
    classname: str
    time_s: float = 0.0
    outcome: Outcome = "passed"
    message: str = ""
    detail: str = ""  # the failure/error/skipped element's text
    output: str = ""  # <system-out>


@dataclass
class Suite:
    """One `<testsuite>`; counts are derived from its cases."""

    name: str
    cases: list[Case] = field(default_factory=list)
    time_s: float = 0.0
    timestamp: str | None = None  # ISO 8601
    hostname: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def add(self, case: Case) -> Case:
        self.cases.append(case)
        return case

    def count(self, outcome: Outcome) -> int:
        return sum(1 for c in self.cases if c.outcome == outcome)


def _seconds(value: float) -> str:
    return f"{max(0.0, float(value)):.3f}"


def _case_element(case: Case) -> ET.Element:
    elem = ET.Element(
        "testcase", name=case.name, classname=case.classname, time=_seconds(case.time_s)
    )
    if case.outcome != "passed":
        child = ET.SubElement(elem, case.outcome, message=case.message)
        if case.outcome != "skipped":
            child.set("type", case.outcome)
        child.text = case.detail or None
    if case.output:
        ET.SubElement(elem, "system-out").text = case.output
    return elem


def _suite_element(suite: Suite) -> ET.Element:
    attrs = {
        "name": suite.name,
        "tests": str(len(suite.cases)),
        "failures": str(suite.count("failure")),
        "errors": str(suite.count("error")),
        "skipped": str(suite.count("skipped")),
        "time": _seconds(suite.time_s),
    }
    if suite.timestamp:
        attrs["timestamp"] = suite.timestamp
    if suite.hostname:
        attrs["hostname"] = suite.hostname
    elem = ET.Element("testsuite", attrs)
    if suite.properties:
        props = ET.SubElement(elem, "properties")
        for key, value in suite.properties.items():
            ET.SubElement(props, "property", name=key, value=str(value))
    elem.extend(_case_element(c) for c in suite.cases)
    return elem


def to_xml(suites: Iterable[Suite], name: str = "flashlab") -> str:
    """The `<testsuites>` document as a string (UTF-8 declaration included)."""
    suites = list(suites)
    root = ET.Element(
        "testsuites",
        name=name,
        tests=str(sum(len(s.cases) for s in suites)),
        failures=str(sum(s.count("failure") for s in suites)),
        errors=str(sum(s.count("error") for s in suites)),
        time=_seconds(sum(s.time_s for s in suites)),
    )
    root.extend(_suite_element(s) for s in suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: Path, suites: Iterable[Suite], name: str = "flashlab") -> Path:
    """Write the document atomically (temp file + rename): a CI never reads half a file."""
    return write_text_atomic(Path(path), to_xml(suites, name))


# --- a run's summary.json as a suite ----------------------------------------------------------


def number(value: Any) -> str:
    """A measured or expected value as people write it: 0 not 0.0, 812.5, 0.0123."""
    if value is None:
        return "nothing (not measured)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _examples(check: dict[str, Any]) -> str:
    examples = [str(e) for e in check.get("examples") or []]
    if not examples:
        return ""
    shown = ", ".join(examples[:MAX_EXAMPLES_IN_MESSAGE])
    more = f" (+{len(examples) - MAX_EXAMPLES_IN_MESSAGE} more)" if len(examples) > 5 else ""
    return f"; examples: {shown}{more}"


def _clause_status(clause: dict[str, Any]) -> str:
    return str(clause.get("status") or ("pass" if clause.get("ok") else "fail"))


def _inconclusive_reason(clause: dict[str, Any], reasons: list[str]) -> str:
    if clause.get("reason"):
        return str(clause["reason"])
    text = str(clause.get("clause", ""))
    return next((r for r in reasons if text and text in r), "inconclusive")


def clause_case(clause: dict[str, Any], summary: dict[str, Any], classname: str) -> Case:
    """A hypothesis clause as a test case (see the module docstring)."""
    case = Case(name=str(clause.get("clause", clause.get("key", "?"))), classname=classname)
    status = _clause_status(clause)
    measured = f"measured {number(clause.get('measured'))} vs expected {clause.get('op')} {number(clause.get('expected'))}"
    if clause.get("ref") is not None:  # a relative bound: both sides, as the CLI shows them
        measured = sides(clause)
    if status == "pass":
        case.output = measured
    elif status == "inconclusive":
        case.outcome = "skipped"
        case.message = (
            f"inconclusive: {_inconclusive_reason(clause, summary.get('verdict_reasons') or [])}"
        )
        case.detail = measured
    else:
        check = (summary.get("checks") or {}).get(CHECK_KEYS.get(str(clause.get("key")), ""), {})
        case.outcome = "failure"
        case.message = measured + _examples(check)
        case.detail = str(check.get("detail", ""))
    return case


def check_case(name: str, check: dict[str, Any], gated: bool, classname: str) -> Case:
    """A consistency check as a test case; `gated`: a hypothesis clause names it."""
    case = Case(name=name, classname=classname)
    if check.get("ok"):
        case.output = str(check.get("detail", ""))
        return case
    if check.get("na"):  # the backend does not offer the facts it needs: neither pass nor fail
        case.outcome, case.message = "skipped", f"n/a: {check['na']}"
        return case
    if check.get("ok") is None:  # the check raised: unknown, neither pass nor fail
        case.outcome, case.message = "skipped", f"unknown: {check.get('detail', '')}"
        return case
    measured = f"measured {number(check.get('count'))} vs expected == 0{_examples(check)}"
    case.detail = str(check.get("detail", ""))
    if gated:
        case.outcome, case.message = "failure", measured
    else:
        case.outcome = "skipped"
        case.message = f"not in the hypothesis (does not change the verdict): {measured}"
    return case


def _gated_checks(clauses: list[dict[str, Any]]) -> set[str]:
    return {CHECK_KEYS[str(c.get("key"))] for c in clauses if str(c.get("key")) in CHECK_KEYS}


def _verdict_case(summary: dict[str, Any], cases: list[Case], classname: str) -> Case | None:
    """A case for a failed verdict that no failing clause explains (aborted run, ...)."""
    if summary.get("verdict") != "fail" or any(c.outcome == "failure" for c in cases):
        return None
    reasons = summary.get("verdict_reasons") or ["the verdict is fail"]
    return Case(name="verdict", classname=classname, outcome="failure", message="; ".join(reasons))


def run_suite(
    summary: dict[str, Any],
    name: str,
    *,
    timestamp: str | None = None,
    report: str | None = None,
    expected_failure: str | None = None,
) -> Suite:
    """One run's summary.json as a suite named `name` (e.g. the experiment's name).

    `expected_failure`: this run was expected to fail (a matrix cell such as naive); its
    failures become skipped cases with this reason, so only surprises turn a CI red."""
    clauses = list(summary.get("hypothesis") or [])
    suite = Suite(
        name=name,
        time_s=float(summary.get("duration_s") or 0.0),
        timestamp=timestamp,
        properties={
            k: str(v)
            for k, v in {
                "run_id": summary.get("run_id"),
                "verdict": summary.get("verdict"),
                "schema_version": summary.get("schema_version"),
                "report": report,
            }.items()
            if v is not None
        },
    )
    for clause in clauses:
        suite.add(clause_case(clause, summary, f"{name}.hypothesis"))
    gated = _gated_checks(clauses)
    for check_name, check in (summary.get("checks") or {}).items():
        suite.add(check_case(check_name, check, check_name in gated, f"{name}.checks"))
    verdict = _verdict_case(summary, suite.cases, name)
    if verdict is not None:
        suite.add(verdict)
    if expected_failure:
        for case in suite.cases:
            if case.outcome == "failure":
                case.outcome = "skipped"
                case.message = f"expected: {expected_failure}; {case.message}"
    return suite


def error_suite(name: str, message: str, classname: str | None = None) -> Suite:
    """A suite for a run that ended without a verdict (bad input, infrastructure error)."""
    return Suite(
        name=name, cases=[Case("run", classname or name, outcome="error", message=message)]
    )


# --- a matrix directory as suites -------------------------------------------------------------


def _cell_name(cell: dict[str, Any]) -> str:
    return str(cell.get("run_dir") or f"{cell['strategy']}-{cell['fault']}-{cell['durability']}")


def _expectation_case(cell: dict[str, Any], name: str) -> Case:
    """Whether the cell's verdict is the one a correct lab expects (the matrix's exit code)."""
    expected, verdict = str(cell.get("expected")), str(cell.get("verdict"))
    case = Case(
        name="expected verdict", classname=name, output=f"expected {expected}, got {verdict}"
    )
    if verdict == "inconclusive" and expected != "fail":
        case.outcome, case.message = "skipped", "inconclusive: the run could not decide"
    elif cell.get("unexpected") and expected != "fail":
        case.outcome, case.message = "failure", f"expected {expected}, got {verdict}"
    elif cell.get("unexpected"):
        case.outcome, case.message = "skipped", f"expected fail, got {verdict} (not gating)"
    return case


def matrix_suites(matrix_dir: Path, cells: list[dict[str, Any]]) -> list[Suite]:
    """One suite per matrix.json cell: its expected-verdict case, then its run's clauses and checks."""
    suites = []
    for cell in cells:
        name = _cell_name(cell)
        if cell.get("error") or cell.get("verdict") == "error":
            suites.append(error_suite(name, str(cell.get("error") or "cell did not run")))
            continue
        try:
            summary = read_summary(Path(matrix_dir) / name / SUMMARY)
        except RunDirError as exc:
            suites.append(error_suite(name, str(exc)))
            continue
        expected = str(cell.get("expected"))
        suite = run_suite(
            summary,
            name,
            report=str(Path(matrix_dir) / name / "report.html"),
            expected_failure=None if expected == "pass" else f"this cell may fail ({expected})",
        )
        suite.cases.insert(0, _expectation_case(cell, name))
        suites.append(suite)
    return suites
