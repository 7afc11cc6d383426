"""The blocks drawn from run records (docs/data/*.jsonl): findings, recovery times, the matrix, targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flashlab.analysis.docfigures import text
from flashlab.analysis.docfigures.data import data_file
from flashlab.analysis.docfigures.data import runs

# The README's findings, in the order the story goes; experiments not named here follow.
FINDINGS_ORDER = (
    "seed-phase1-naive",
    "seed-phase2-lock",
    "optimistic",
    "lua",
    "bots",
    "bots-limited",
    "redis-kill-none",
    "redis-kill-aof-always",
)
# The simulator's default behaviour mix: a run with these profiles says nothing about bots.
DEFAULT_PROFILES = {"patient", "impatient", "bot"}


def _ordered(by_name: dict[Any, list[dict[str, Any]]], first: tuple[str, ...]) -> list[Any]:
    return [n for n in first if n in by_name] + [n for n in by_name if n not in first]


def _faults(records: list[dict[str, Any]]) -> str:
    faults = records[0].get("faults") or []
    return ", ".join(f"{f['fault']} at {f['at_s']:g} s" for f in faults) or "none"


def notes(records: list[dict[str, Any]]) -> str:
    """What else these runs of one experiment show, from their own figures."""
    said = []
    if faults := records[0].get("faults"):
        said.append(f"{_faults(records)} (durability {records[0].get('durability')})")
    if any((r.get("conflict_rate") or 0) >= 0.01 for r in records):
        said.append(f"409 busy: {text.pct(r.get('conflict_rate') for r in records)} of attempts")
    if any(r.get("undersold") for r in records):
        undersold = text.span((r.get("undersold") for r in records), text.count)
        gave_up = text.span((r.get("gave_up") for r in records), text.count)
        said.append(f"undersold {undersold}, {gave_up} shoppers gave up")
    bots: list[dict[str, Any]] = [b for r in records if (b := (r.get("profiles") or {}).get("bot"))]
    if len(bots) == len(records) and set(records[0]["profiles"]) != DEFAULT_PROFILES:
        said.append(
            f"bots ({text.pct(b['shopper_share'] for b in bots)} of shoppers) took "
            f"{text.pct(b['unit_share'] for b in bots)} of the units"
        )
    if not faults and all(r.get("sold") == r.get("stock_initial") for r in records):
        said.append(f"sold out at {text.secs(r.get('sellout_s') for r in records)}")
    return "; ".join(said) or text.DASH


def generator(records: list[dict[str, Any]]) -> str:
    """`healthy`, or how many runs had an overloaded generator (their timings are untrusted)."""
    bad = sum(r.get("generator_healthy") is False for r in records)
    if not bad:
        return "healthy"
    return "**overloaded**" if len(records) == 1 else f"**overloaded** in {bad} of {len(records)}"


def _row(name: str, records: list[dict[str, Any]], columns: list[str]) -> str:
    cells = {
        "experiment": f"`{name}`",
        "runs": str(len(records)),
        "verdict": text.verdicts(r["verdict"] for r in records),
        "sold / stock": f"{text.span((r.get('sold') for r in records), text.count)} / "
        f"{text.span((r.get('stock') for r in records), text.count)}",
        "acked": text.span((r.get("acknowledged") for r in records), text.count),
        "oversell": text.span((r.get("oversell") for r in records), text.count),
        "lost acked": text.span((r.get("lost_acknowledged") for r in records), text.count),
        "p99": text.ms(r.get("p99_ms") for r in records),
        "req/s": text.rps(r.get("throughput_rps") for r in records),
        "faults": _faults(records),
        "load generator": generator(records),
        "what the runs show": notes(records),
    }
    return "| " + " | ".join(cells[c] for c in columns) + " |"


def table(by_name: dict[Any, list[dict[str, Any]]], names: list[Any], columns: list[str]) -> str:
    head = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(head + [_row(str(n), by_name[n], columns) for n in names])


def findings(root: Path) -> str:
    """README "What it found": one row per experiment, ranges over its runs."""
    records = runs(root, "findings")
    by_name = text.group(records, "experiment")
    columns = ["experiment", "runs", "verdict", "sold / stock", "oversell", "lost acked", "p99"]
    columns += ["req/s", "load generator", "what the runs show"]
    body = table(by_name, _ordered(by_name, FINDINGS_ORDER), columns)
    return f"{text.source_line(records, data_file('findings'))}\n\n{body}"


def targets(root: Path) -> str:
    """docs/TARGETS.md: the example backends' experiments, ranges over their runs."""
    records = runs(root, "targets")
    by_name = text.group(records, "experiment")
    columns = ["experiment", "faults", "runs", "verdict", "sold / stock", "acked", "oversell"]
    columns += ["lost acked", "p99", "req/s", "load generator"]
    body = table(by_name, list(by_name), columns)
    return f"{text.source_line(records, data_file('targets'))}\n\n{body}"


def _recovery_row(name: str, fault: str, records: list[dict[str, Any]]) -> str:
    seen = [r["by_fault"][fault] for r in records]
    cells = [
        f"`{name}`",
        f"`{fault}`",
        str(records[0].get("durability") or text.DASH),
        text.pct(s.get("baseline_availability") for s in seen),
        text.pct(s.get("availability") for s in seen),
        text.secs((s.get("first_success_s") for s in seen), 3),
        text.secs(s.get("time_to_recover_s") for s in seen),
        text.span((r.get("lost_acknowledged") for r in records), text.count),
        text.verdicts(r["verdict"] for r in records),
        generator(records),
    ]
    return "| " + " | ".join(cells) + " |"


def recovery(root: Path) -> str:
    """docs/CHAOS.md: per experiment and fault, availability in the window and time to recover."""
    records = [r for r in runs(root, "recovery") if r.get("by_fault")]
    rows = [
        "| experiment | fault | durability | availability before | during the fault "
        "| first success after recovery | back within 10% of before | lost acked | verdict "
        "| load generator |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, group in text.group(records, "experiment").items():
        for fault in group[0]["by_fault"]:
            rows.append(_recovery_row(str(name), fault, group))
    return f"{text.source_line(records, data_file('recovery'))}\n\n" + "\n".join(rows)


def matrix(root: Path) -> str:
    """docs/CHAOS.md: one row per matrix cell, its expected and measured verdict."""
    records = sorted(runs(root, "matrix"), key=lambda r: (r.get("matrix") or {}).get("index", 0))
    rows = [
        "| strategy | durability | fault | expected | verdict | oversell | lost acked | p99 | req/s "
        "| load generator |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        cell = r.get("matrix") or {}
        measured = [
            r["verdict"].upper() if r["verdict"] == "fail" else r["verdict"],
            text.span([r.get("oversell")], text.count),
            text.span([r.get("lost_acknowledged")], text.count),
            text.ms([r.get("p99_ms")]),
            text.rps([r.get("throughput_rps")]),
            generator([r]),
        ]
        given = [
            cell.get("strategy"),
            cell.get("durability"),
            cell.get("fault"),
            cell.get("expected"),
        ]
        rows.append("| " + " | ".join(str(c) for c in given + measured) + " |")
    return f"{text.source_line(records, data_file('matrix'))}\n\n" + "\n".join(rows)
