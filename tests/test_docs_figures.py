"""The docs' measured figures are what their committed data renders (flashlab.analysis.docfigures).

A figure in README.md or docs/*.md lives in a `<!-- figures:NAME start/end -->` block that
`make docs-figures` writes from docs/data/*.jsonl, bench/results.jsonl or a shipped file. These
tests fail when a block was edited by hand (and prove, on a copy, that an edit is caught), when
a block is not registered or a registered one is in no doc, and check the extraction that turns
run directories into the committed records.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flashlab.analysis.docfigures.blocks import BLOCKS
from flashlab.analysis.docfigures.blocks import doc_paths
from flashlab.analysis.docfigures.blocks import placed
from flashlab.analysis.docfigures.blocks import stale_blocks
from flashlab.analysis.docfigures.blocks import write_docs
from flashlab.analysis.docfigures.data import read_jsonl
from flashlab.analysis.docfigures.extract import extract
from flashlab.analysis.summary import ensure_summary
from flashlab.bench import BENCHMARKS
from flashlab.bench.report import update
from flashlab.core.errors import UserError
from flashlab.core.provenance import provenance
from flashlab.core.rundir import SCHEMA_VERSION
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic
from flashlab.testing.synthetic import write_synthetic_set

ROOT = Path(__file__).resolve().parents[1]


def _report(stale: list) -> str:
    return "\n\n".join(f"{s.doc.name}: block '{s.name}'\n{s.diff}" for s in stale)


def test_every_block_in_the_docs_is_what_its_committed_data_renders() -> None:
    stale = stale_blocks(ROOT)
    assert not stale, "edited by hand? run `make docs-figures`:\n" + _report(stale)


def test_every_registered_block_sits_in_a_doc_and_every_block_is_registered() -> None:
    where = placed(ROOT)
    assert set(where) == set(BLOCKS), (sorted(where), sorted(BLOCKS))


def _block_of(text: str, name: str) -> tuple[int, int]:
    start = text.index(f"<!-- figures:{name} start -->")
    return start, text.index(f"<!-- figures:{name} end -->", start)


def test_a_figure_edited_by_hand_inside_a_block_is_caught_and_outside_is_not(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "TARGETS.md"
    shutil.copy(ROOT / "docs" / "TARGETS.md", copy)
    text = copy.read_text()
    start, end = _block_of(text, "targets")
    inside = text[start:end]
    assert "| 1,800 |" in inside  # node-naive's oversell, from docs/data/targets.jsonl
    copy.write_text(text[:start] + inside.replace("| 1,800 |", "| 1,700 |", 1) + text[end:])
    stale = stale_blocks(ROOT, [copy])
    assert [s.name for s in stale] == ["targets"]
    assert "-| `node-naive`" in stale[0].diff and "1,700" in stale[0].diff
    # the same edit outside any block is prose, not a generated figure
    copy.write_text(text + "\nWe once saw 1,700 oversold.\n")
    assert stale_blocks(ROOT, [copy]) == []


def _tmp_checkout(tmp_path: Path) -> Path:
    """README.md, docs/ (with docs/data/), bench/results.jsonl and the example experiment."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "bench").mkdir()
    shutil.copy(ROOT / "bench" / "results.jsonl", tmp_path / "bench" / "results.jsonl")
    (tmp_path / "experiments").mkdir()
    shutil.copy(ROOT / "experiments" / "demo-chaos.yaml", tmp_path / "experiments")
    return tmp_path


def test_writing_repairs_an_edit_and_a_second_write_changes_nothing(tmp_path: Path) -> None:
    root = _tmp_checkout(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    start, end = _block_of(text, "findings")
    readme.write_text(text[:start] + text[start:end].replace("| 0 |", "| 7 |", 1) + text[end:])
    assert [s.name for s in stale_blocks(root)] == ["findings"]
    assert write_docs(root) == [readme]
    assert readme.read_text() == text
    assert write_docs(root) == []  # idempotent: `make docs-figures` twice leaves git clean
    assert stale_blocks(root) == []


def test_new_data_changes_the_block_that_reads_it(tmp_path: Path) -> None:
    root = _tmp_checkout(tmp_path)
    data = root / "docs" / "data" / "targets.jsonl"
    rows = read_jsonl(data)
    rows[0]["oversell"] = 1234
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [(s.doc.name, s.name) for s in stale_blocks(root)] == [("TARGETS.md", "targets")]
    write_docs(root)
    start, end = _block_of((root / "docs" / "TARGETS.md").read_text(), "targets")
    assert "1,234–1,800" in (root / "docs" / "TARGETS.md").read_text()[start:end]


def test_unpaired_markers_and_unknown_blocks_are_one_line_errors(tmp_path: Path) -> None:
    doc = tmp_path / "X.md"
    doc.write_text("a\n<!-- figures:findings start -->\nno end\n")
    with pytest.raises(UserError, match="has no matching findings marker"):
        stale_blocks(ROOT, [doc])
    doc.write_text("<!-- figures:nope start -->\n<!-- figures:nope end -->\n")
    with pytest.raises(UserError, match=r"unknown figures block 'nope' \(allowed: "):
        write_docs(ROOT, [doc])


def test_the_benchmark_update_the_bench_command_calls_is_a_no_op_on_current_docs() -> None:
    before = [p.read_text() for p in doc_paths(ROOT)]
    assert update() is False
    assert [p.read_text() for p in doc_paths(ROOT)] == before


def test_benchmarks_doc_counts_and_lists_every_registered_benchmark() -> None:
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    said = re.search(r"^(\w+) benchmarks measure", text, re.MULTILINE)
    assert said and said.group(1).lower() == words[len(BENCHMARKS)], said
    for name in BENCHMARKS:
        assert f"\n| `{name}` |" in text, name
        assert f"![{name}](../bench/plots/{name}.png)" in text, name


def test_ci_doc_states_the_schema_version_the_code_writes() -> None:
    text = (ROOT / "docs" / "CI.md").read_text()
    assert f"carry `schema_version` (an integer; now `{SCHEMA_VERSION}`)" in text
    assert "`SCHEMA_VERSION` in `flashlab/core/rundir.py`" in text
    assert "SCHEMA_VERSION = " in (ROOT / "flashlab" / "core" / "rundir.py").read_text()


def _run(path: Path, **spec: object) -> Path:
    write_synthetic(path, SyntheticSpec(**spec))  # type: ignore[arg-type]
    ensure_summary(path)
    return path


def test_extract_writes_one_record_per_run_with_its_figures_and_provenance(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path / "one", run_id="one", plant={"oversell": 3})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest |= {"command": "flashlab run x.yaml", "host": {"hostname": "h", "load_avg": [1.5]}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "data" / "x.jsonl"
    (rec,) = extract([run], out)
    summary = json.loads((run / "summary.json").read_text())
    assert rec["oversell"] == summary["oversell"] == 3
    assert rec["verdict"] == summary["verdict"] == "fail"
    assert rec["p99_ms"] == round(summary["latency_ms"]["p99"], 1)
    assert rec["command"] == "flashlab run x.yaml" and rec["command_recorded"] is True
    assert rec["host"]["hostname"] == "h" and rec["host"]["load_avg_1m"] == 1.5
    assert read_jsonl(out) == [rec]
    before = out.read_bytes()
    extract([run], out)
    assert out.read_bytes() == before  # same runs, same bytes


def test_extract_expands_a_trial_set_and_needs_a_command_for_old_manifests(
    tmp_path: Path,
) -> None:
    specs = [SyntheticSpec(run_id=f"t{i}", seed=i) for i in (1, 2)]
    trial_set = write_synthetic_set(tmp_path / "set", specs)
    for trial in sorted(trial_set.glob("trial-*")):
        ensure_summary(trial)
    out = tmp_path / "x.jsonl"
    with pytest.raises(UserError, match="records no command; pass --command"):
        extract([trial_set], out)
    rows = extract([trial_set], out, command="flashlab run experiments/{experiment}.yaml")
    assert [r["set"] for r in rows] == ["set", "set"]
    for r in rows:
        assert r["command"] == f"flashlab run experiments/{r['experiment']}.yaml"
    assert not any(r["command_recorded"] for r in rows)


def test_extract_refuses_an_incomplete_run_and_a_folder_that_is_no_run(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text()) | {"complete": False}
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="incomplete run"):
        extract([run], tmp_path / "x.jsonl", command="c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a run directory, trial set or matrix"):
        extract([tmp_path / "empty"], tmp_path / "x.jsonl", command="c")


def test_the_check_command_passes_on_the_committed_docs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flashlab.analysis.docfigures", "check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_manifest_records_the_command_line_and_the_load_its_figures_need(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["/x/bin/flashlab", "run", "lua", "--out", "a b"])
    made = provenance({})
    assert made["command"] == "flashlab run lua --out 'a b'"
    load = made["host"]["load_avg"]
    assert len(load) == 3 and all(isinstance(v, float) and v >= 0 for v in load)
