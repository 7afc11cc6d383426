"""The committed result files the doc blocks read: docs/data/*.jsonl and bench/results.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flashlab.core.errors import UserError

DATA_DIR = Path("docs") / "data"  # under the repository root
BENCH_RESULTS = Path("bench") / "results.jsonl"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file as an object; a UserError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: missing (a figures block reads it)") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object")
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """One sorted-key JSON object per line, so the same records give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def runs(root: Path, name: str) -> list[dict[str, Any]]:
    """The run records of docs/data/NAME.jsonl, oldest first."""
    return read_jsonl(root / DATA_DIR / f"{name}.jsonl")


def data_file(name: str) -> str:
    """docs/data/NAME.jsonl as the docs cite it."""
    return (DATA_DIR / f"{name}.jsonl").as_posix()


def bench_lines(root: Path) -> list[dict[str, Any]]:
    """The full-size lines of bench/results.jsonl, in file order (later lines are newer)."""
    return [r for r in read_jsonl(root / BENCH_RESULTS) if r.get("size", "full") == "full"]


def latest_bench(root: Path) -> dict[str, dict[str, Any]]:
    """The newest full-size line per benchmark, in the order each benchmark first appears."""
    found: dict[str, dict[str, Any]] = {}
    for line in bench_lines(root):
        found[line["bench"]] = line
    return found
