"""Renders the latest results line of each benchmark as the Markdown table in docs/BENCHMARKS.md.

`python -m flashlab.bench.report [RESULTS] [DOC]` rewrites the part of DOC between the two marker comments;
`flashlab bench ... --size full` calls it after appending its lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from flashlab.bench.context import REPO_ROOT
from flashlab.bench.context import RESULTS_FULL

DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"
START = "<!-- results:start -->"
END = "<!-- results:end -->"
MET = {True: "met", False: "**missed**", None: "n/a"}


def latest(results: Path) -> dict[str, dict[str, Any]]:
    """The newest full-size line per benchmark (later lines win)."""
    found: dict[str, dict[str, Any]] = {}
    if not results.exists():
        return found
    for raw in results.read_text().splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if line.get("size", "full") == "full":
            found[line["bench"]] = line
    return found


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def table(lines: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| benchmark | measured at | revision | target | value | met? |",
        "|---|---|---|---|---|---|",
    ]
    for name, line in lines.items():
        rev = (line.get("git_revision") or {}).get("commit") or "?"
        rev = rev[:8] + ("+dirty" if (line.get("git_revision") or {}).get("dirty") else "")
        targets = line.get("targets") or {"(no target: tracked measurement)": None}
        for key, t in targets.items():
            if t is None:
                rows.append(f"| {name} | {line['started_at']} | {rev} | {key} | - | - |")
                continue
            rows.append(
                f"| {name} | {line['started_at']} | {rev} | `{key}` {t['target']} "
                f"| {_fmt(t['value'])} | {MET[t['met']]} |"
            )
    ratios = ["", "Ratios of the latest run of each benchmark:", ""]
    for name, line in lines.items():
        pairs = ", ".join(f"`{k}`={_fmt(v)}" for k, v in line["ratios"].items())
        ratios.append(f"- **{name}**: {pairs}")
    return "\n".join(rows + ratios)


def update(results: Path = RESULTS_FULL, doc: Path = DOC) -> bool:
    """Rewrite the table between the markers; False when the doc has no markers."""
    if not doc.exists():
        return False
    text = doc.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{START}\n{table(latest(results))}\n{END}{tail}")
    return True


if __name__ == "__main__":
    args = sys.argv[1:]
    ok = update(Path(args[0]) if args else RESULTS_FULL, Path(args[1]) if len(args) > 1 else DOC)
    raise SystemExit(0 if ok else 1)
