"""The HTML reports: every shown number equals summary.json, the page is self-contained and renders in
headless Chromium, and the matrix grid has one correctly classed cell per combination."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from flashlab.analysis import report
from flashlab.core.rundir import REPORT
from flashlab.core.rundir import SUMMARY
from flashlab.core.rundir import RunDirError
from flashlab.testing.synthetic import OVERLOADED
from flashlab.testing.synthetic import Outage
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
HYPOTHESIS = [
    "oversell == 0",
    "lost_acknowledged == 0",
    "latency_ms.p99 < 800",
    "conflict_rate < 0.5",
]
NUMBER = re.compile(r"[-+]?[\d,]*\.?\d+")
EMPTY = object()


# --- helpers ------------------------------------------------------------------------------------


class KeyedElements(HTMLParser):
    """Collects (data-key, data-fmt, text) of every element carrying data-key, plus every URL attribute."""

    URL_ATTRS = frozenset(
        {"src", "href", "srcset", "action", "poster", "data", "formaction", "background"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.keyed: list[tuple[str, str, str]] = []
        self.urls: list[tuple[str, str, str]] = []  # (tag, attr, value)
        self.tags: list[str] = []
        self.classes: list[tuple[str, dict[str, str]]] = []
        self._open: list[list[Any]] = []  # [tag, key, fmt, text parts]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        self.classes.append((tag, attr))
        self.urls += [(tag, k, v) for k, v in attr.items() if k in self.URL_ATTRS]
        if "data-key" in attr:
            self._open.append([tag, attr["data-key"], attr.get("data-fmt", ""), []])

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, key, fmt, parts = self._open.pop()
            self.keyed.append((key, fmt, "".join(parts).strip()))

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element[3].append(data)


def parse(html: str) -> KeyedElements:
    parser = KeyedElements()
    parser.feed(html)
    parser.close()
    return parser


def resolve(data: Any, path: str) -> Any:
    """Strict lookup of a dotted path (list indices as numbers); EMPTY when the path does not exist."""
    node = data
    try:
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
    except (LookupError, TypeError, ValueError):  # no such key or index, or not a container
        return EMPTY
    return node


def shown_equals(text: str, fmt: str, expected: Any) -> bool:
    """Does the displayed text represent `expected`, to the precision it shows?"""
    if fmt == "none":
        return expected is None and text == "—"
    if fmt == "bool":
        return isinstance(expected, bool) and text == ("yes" if expected else "no")
    if fmt == "str":
        return text == str(expected)
    if expected is None or isinstance(expected, bool | str):
        return False
    match = NUMBER.search(text)
    if not match:
        return False
    digits = match.group().replace(",", "")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    scale = 100.0 if fmt == "pct" else 1.0
    return abs(float(digits) - float(expected) * scale) <= 0.5 * 10**-decimals + 1e-9


def make_run(path: Path, **spec: Any) -> Path:
    spec.setdefault("hypothesis", HYPOTHESIS)
    write_synthetic(path, SyntheticSpec(run_id=path.name, **spec))
    return path


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded run with a Redis outage, oversell and lost orders planted: a FAIL with every section filled."""
    path = tmp_path_factory.mktemp("report") / "chaos-run"
    make_run(
        path,
        shoppers=1500,
        stock=400,
        seed=7,
        outage=Outage(start_s=0.3, end_s=0.6, tail_s=0.1),
        plant={"oversell": 3, "lost_acknowledged": 2},
    )
    report.write_report(path)
    return path


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "clean-run"
    make_run(path, shoppers=400, stock=100, seed=3)
    report.write_report(path)
    return path


# --- run report ---------------------------------------------------------------------------------


def test_missing_summary_is_computed_and_written(chaos_run: Path) -> None:
    assert (chaos_run / SUMMARY).exists(), "write_report must write summary.json first when missing"
    assert (chaos_run / REPORT).exists()
    assert not list(chaos_run.glob("*.partial"))


def test_every_shown_number_equals_summary(chaos_run: Path) -> None:
    summary = json.loads((chaos_run / SUMMARY).read_text())
    keyed = parse((chaos_run / REPORT).read_text()).keyed
    keys = {key for key, _, _ in keyed}
    assert len(keys) >= 15, f"only {len(keys)} keyed numbers"
    required = {
        "verdict",
        "sold",
        "stock_initial",
        "oversell",
        "lost_acknowledged",
        "conflict_rate",
        "latency_ms.p50",
        "latency_ms.p95",
        "latency_ms.p99",
        "throughput_rps",
        "sellout_s",
        "hypothesis.0.measured",
        "hypothesis.2.expected",
        "recovery.0.recovery_s",
        "recovery.0.window_availability",
        "reconciliation.client_ok",
        "reconciliation.redis_orders",
        "fairness.rank_correlation",
        "fairness.early_half_win_share",
        "checks.oversell.count",
        "service_latency_ms.p99",
        "codes.ok",
    }
    assert required <= keys, f"missing from the report: {sorted(required - keys)}"
    wrong = []
    for key, fmt, text in keyed:
        expected = resolve(summary, key)
        if expected is EMPTY:
            wrong.append(f"{key}: not in summary.json (shown {text!r})")
        elif key == "verdict":
            if text.lower() != expected:
                wrong.append(f"verdict: shown {text!r}, summary {expected!r}")
        elif not shown_equals(text, fmt, expected):
            wrong.append(f"{key} [{fmt}]: shown {text!r}, summary {expected!r}")
    assert not wrong, "\n".join(wrong)


def test_verdict_banner_and_hypothesis(chaos_run: Path, clean_run: Path) -> None:
    failing = parse((chaos_run / REPORT).read_text())
    assert ("section", "verdict-fail") in [
        (tag, cls) for tag, attr in failing.classes for cls in attr.get("class", "").split()
    ]
    summary = json.loads((chaos_run / SUMMARY).read_text())
    assert summary["verdict"] == "fail" and summary["oversell"] > 0
    clauses = [k for k, _, _ in failing.keyed if k.startswith("hypothesis.")]
    assert len(clauses) == 2 * len(HYPOTHESIS)  # expected and measured per clause
    passing = (clean_run / REPORT).read_text()
    assert 'class="banner verdict-pass"' in passing
    assert "No faults were injected" in passing and "No anomalies" in passing


GENERATOR_KEYS = {
    "generator.healthy",
    "generator.lag_ms_p99",
    "generator.lag_ms_max",
    "generator.stalled_s",
    "generator.cpu_pct_max",
}


def _keyed_mismatches(run: Path) -> list[str]:
    summary = json.loads((run / SUMMARY).read_text())
    return [
        f"{key} [{fmt}]: shown {text!r}, summary {resolve(summary, key)!r}"
        for key, fmt, text in parse((run / REPORT).read_text()).keyed
        if key != "verdict" and not shown_equals(text, fmt, resolve(summary, key))
    ]


def test_overloaded_generator_is_warned_about(tmp_path: Path, clean_run: Path) -> None:
    run = make_run(tmp_path / "overloaded", shoppers=300, stock=100, seed=5, generator=OVERLOADED)
    report.write_report(run)
    html = (run / REPORT).read_text()
    summary = json.loads((run / SUMMARY).read_text())
    assert summary["generator"]["healthy"] is False
    text = re.sub(r"<[^>]+>", "", html)
    assert (
        "The load generator was overloaded (event-loop lag p99 180.0 ms, stalled 2.40 s): "
        "latencies include client-side delay; re-run with more engine workers or a lighter machine."
    ) in " ".join(text.split())
    # Right under the verdict banner, and every generator figure equals summary.json.
    assert html.index('id="generator-warning"') > html.index('id="verdict"')
    assert html.index('id="generator-warning"') < html.index('id="hypothesis"')
    assert {k for k, _, _ in parse(html).keyed} >= GENERATOR_KEYS
    assert not _keyed_mismatches(run)
    clean = (clean_run / REPORT).read_text()
    assert 'id="generator-warning"' not in clean
    assert {k for k, _, _ in parse(clean).keyed} >= GENERATOR_KEYS


def test_run_without_generator_data_shows_dashes(tmp_path: Path) -> None:
    run = make_run(tmp_path / "old", shoppers=200, stock=50, seed=2, generator=None)
    report.write_report(run)
    html = (run / REPORT).read_text()
    assert 'id="generator-warning"' not in html
    shown = {k: (fmt, text) for k, fmt, text in parse(html).keyed if k in GENERATOR_KEYS}
    assert set(shown) == GENERATOR_KEYS and all(v == ("none", "—") for v in shown.values())
    assert not _keyed_mismatches(run)


def test_anomalies_show_example_operations(chaos_run: Path) -> None:
    html = (chaos_run / REPORT).read_text()
    summary = json.loads((chaos_run / SUMMARY).read_text())
    lost = summary["checks"]["lost_acknowledged"]["examples"]
    assert lost, "the planted lost orders must have examples"
    section = html.split('id="anomalies"', 1)[1].split('id="fairness"', 1)[0]
    for op_id in lost:
        assert f"<td>{op_id}</td>" in section, f"example op {op_id} not shown as a history row"


def test_report_is_self_contained(chaos_run: Path) -> None:
    html = (chaos_run / REPORT).read_text()
    parsed = parse(html)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    images = [v for tag, attr, v in parsed.urls if tag == "img"]
    assert len(images) >= 4 and all(v.startswith("data:image/png;base64,") for v in images)
    remote = [
        (t, a, v[:80])
        for t, a, v in parsed.urls
        if not v.startswith(("data:", "#"))
        and not (t == "a" and not re.match(r"(?i)^(https?:)?//", v))
    ]
    assert not remote, f"network references: {remote}"
    assert not re.search(r"(?i)@import|url\(\s*['\"]?(https?:)?//", html), (
        "CSS must not fetch anything"
    )


def test_report_renders_in_headless_chromium(chaos_run: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    from PIL import Image

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    args = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2400",
        (chaos_run / REPORT).resolve().as_uri(),
    ]
    run_own_process_group(args, timeout_s=120)
    assert shot.exists() and shot.stat().st_size > 20_000
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    colours = image.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 200, "screenshot looks blank"
    # The FAIL banner near the top is the report's red (#c62828).
    top = image.crop((0, 0, 1280, 300)).getcolors(maxcolors=1_000_000) or []
    red = sum(n for n, (r, g, b) in top if r > 180 and g < 70 and b < 70)
    assert red > 5_000, "no red verdict banner at the top of the page"


def run_own_process_group(args: list[str], timeout_s: float) -> None:
    """Run a browser in its own process group; on exit or timeout, reap that group (ours, by PID)."""
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        proc.wait(timeout=timeout_s)
    finally:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, signal.SIGTERM if proc.poll() is None else 0)
            except ProcessLookupError:
                break  # the group is gone: chromium's helpers exited with it
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_fmt_rules() -> None:
    assert report.fmt(None, "ms") == ("—", "none")
    assert report.fmt(0.25, "pct") == ("25.00%", "pct")
    assert report.fmt(1234.56, "ms") == ("1,234.6 ms", "ms")
    assert report.fmt(3, "num") == ("3", "int")
    assert report.fmt(0.0, "num") == ("0", "int")
    assert report.fmt(True, "num") == ("yes", "bool")
    assert report.kind_of("latency_ms.p99") == "ms"
    assert report.kind_of("recovery.0.window_availability") == "pct"
    assert report.kind_of("fairness.deciles.3.win_rate") == "pct"
    assert report.kind_of("sellout_s") == "s"
    assert report.kind_of("generator.lag_ms_p99") == "ms"
    assert report.kind_of("generator.cpu_pct_max") == "cpu"
    assert report.fmt(97.34, "cpu") == ("97.3%", "cpu")  # already percent: not scaled by 100


def test_write_report_refuses_a_non_run(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"manifest\.json|not a run directory"):
        report.write_report(tmp_path)


# --- matrix report ------------------------------------------------------------------------------

STRATEGIES = ["naive", "lua"]
FAULTS = ["none", "redis-kill"]
DURABILITIES = ["none", "aof-always"]


def _matrix_cells(linked_run: str) -> list[dict[str, Any]]:
    cells = []
    for i, (strategy, fault, durability) in enumerate(
        (s, f, d) for s in STRATEGIES for f in FAULTS for d in DURABILITIES
    ):
        expected = (
            "fail"
            if strategy == "naive"
            else ("any" if fault == "redis-kill" and durability != "aof-always" else "pass")
        )
        verdict = (
            "fail"
            if strategy == "naive" or (fault == "redis-kill" and durability == "none")
            else "pass"
        )
        if (strategy, fault, durability) == ("lua", "redis-kill", "aof-always"):
            verdict = "fail"  # a planted surprise: expected pass
        cells.append(
            {
                "strategy": strategy,
                "fault": fault,
                "durability": durability,
                "run_dir": linked_run if i == 0 else f"cell-{i}",
                "verdict": verdict,
                "expected": expected,
                "oversell": 37 if strategy == "naive" else 0,
                "lost_acknowledged": i % 3,
                "p99_ms": None if i == 5 else 100.0 + i * 12.345,
            }
        )
    return cells


@pytest.mark.parametrize("wrapped", [True, False], ids=["flashlab-matrix-json", "bare-list"])
def test_matrix_grid(tmp_path: Path, chaos_run: Path, wrapped: bool) -> None:
    shutil.copytree(chaos_run, tmp_path / "linked")
    cells = _matrix_cells("linked")
    (tmp_path / "matrix.json").write_text(json.dumps({"cells": cells} if wrapped else cells))
    html = report.write_matrix_report(tmp_path).read_text()
    parsed = parse(html)
    tds = [
        attr
        for tag, attr in parsed.classes
        if tag == "td" and "cell" in attr.get("class", "").split()
    ]
    assert len(tds) == len(STRATEGIES) * len(FAULTS) * len(DURABILITIES)
    seen = {(a["data-strategy"], a["data-fault"], a["data-durability"]) for a in tds}
    assert len(seen) == len(tds), "one cell per combination"
    by_combo = {(c["strategy"], c["fault"], c["durability"]): c for c in cells}
    for attr in tds:
        cell = by_combo[(attr["data-strategy"], attr["data-fault"], attr["data-durability"])]
        classes = set(attr["class"].split())
        assert f"verdict-{cell['verdict']}" in classes
        unexpected = cell["expected"] != "any" and cell["verdict"] != cell["expected"]
        assert ("unexpected" in classes) == unexpected, (cell, classes)
    assert sum("unexpected" in a["class"].split() for a in tds) == 1
    for key, fmt, text in parsed.keyed:
        assert shown_equals(text, fmt, resolve({"cells": cells}, key)) or (
            key.endswith("verdict") and text == resolve({"cells": cells}, key)
        ), (key, text)
    links = [v for tag, a, v in parsed.urls if tag == "a"]
    assert links == ["linked/report.html"], "only cells whose report exists are linked"


def test_matrix_bad_input(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"missing matrix\.json"):
        report.write_matrix_report(tmp_path)
    (tmp_path / "matrix.json").write_text(json.dumps([{"strategy": "lua", "fault": "none"}]))
    with pytest.raises(RunDirError, match=r"cells\.0: missing durability, verdict"):
        report.write_matrix_report(tmp_path)
