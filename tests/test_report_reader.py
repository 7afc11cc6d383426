"""What a reader of report.html sees, read back from a real headless Chromium (its rendered DOM).

The banner states the verdict and its exit code, counts clauses as clauses, and the page
explains an inconclusive verdict, the host band and n/a checks in its own words (a reader of the
HTML has no repository). `flashlab report RUN --open` hands the page to the user's browser:
$BROWSER points at a stand-in that records the URL (a real browser window cannot be opened in a
test, and the point is what flashlab hands over).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import run_flashlab

from flashlab.analysis.report import write_report


def _dom(page: Path, tmp_path: Path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make test installs it)")
    args = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
        page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, start_new_session=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _inconclusive_copy(run: Path, tmp_path: Path) -> Path:
    """The smoke run, its summary turned into an inconclusive one: a timing clause unjudged."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["verdict"] = "inconclusive"
    summary["hypothesis"][-1] |= {"class": "timing", "status": "inconclusive", "reason": "unsteady"}
    summary["verdict_reasons"] = ["clause 'x' inconclusive: unsteady"]
    (copy / "summary.json").write_text(json.dumps(summary))
    write_report(copy)
    return copy


def test_the_banner_states_the_verdict_its_exit_code_and_counts_clauses(
    smoke_run: Path, tmp_path: Path
) -> None:
    dom = _dom(smoke_run / "report.html", tmp_path)
    clauses = len(json.loads((smoke_run / "summary.json").read_text())["hypothesis"])
    assert "verdict pass · exit code 0" in dom
    assert f"hypothesis clauses: {clauses} held · 0 broken · 0 inconclusive" in dom
    assert "0 pass · 1 fail · 3 inconclusive" not in dom  # a legend that read like counts
    assert "How to read this verdict" in dom


def test_an_inconclusive_report_explains_itself_without_the_repository(
    smoke_run: Path, tmp_path: Path
) -> None:
    dom = _dom(_inconclusive_copy(smoke_run, tmp_path) / "report.html", tmp_path)
    assert "verdict inconclusive · exit code 3" in dom
    assert "1 inconclusive" in dom
    assert '<details id="how-to-read" class="muted" open="">' in dom  # open when it matters
    for words in ("The host band.", "threshold / spread", "n/a.", "load generator was overloaded"):
        assert words in dom, words
    assert "docs/METHOD.md" not in dom.split('id="how-to-read"')[0]  # the banner needs no repo


def test_report_open_hands_the_page_to_the_browser(smoke_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(smoke_run, copy)
    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {seen}\n')
    browser.chmod(0o755)
    proc = run_flashlab(
        "report", str(copy), "--open", timeout=120, env={**os.environ, "BROWSER": str(browser)}
    )
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text() == (copy / "report.html").resolve().as_uri()
