"""How the blocks write figures: ranges over runs, verdict counts, and the line naming their source."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

DASH = "—"  # not measured
NOTICE = "written by `make docs-figures`; change the data, not this text"


def _present(values: Iterable[Any]) -> list[Any]:
    return [v for v in values if v is not None]


def span(values: Iterable[Any], show: Callable[[Any], str]) -> str:
    """`show(v)` of the one value, `low` en-dash `high` over several, a dash when none was measured."""
    found = _present(values)
    if not found:
        return DASH
    low, high = show(min(found)), show(max(found))
    return low if low == high else f"{low}–{high}"


def count(value: Any) -> str:
    return f"{value:,}"


def ms(values: Iterable[Any]) -> str:
    """Latencies: whole ms below a second, else seconds with two decimals (one unit per range)."""
    found = _present(values)
    if found and max(found) >= 1000:
        return span([v / 1000 for v in found], lambda v: f"{v:.2f}") + " s"
    return span(found, lambda v: f"{v:,.0f}") + (" ms" if found else "")


def secs(values: Iterable[Any], digits: int = 2) -> str:
    found = _present(values)
    return span(found, lambda v: f"{v:.{digits}f}") + (" s" if found else "")


def pct(values: Iterable[Any]) -> str:
    found = _present(values)
    return span([100 * v for v in found], lambda v: f"{v:.0f}") + ("%" if found else "")


def rps(values: Iterable[Any]) -> str:
    return span(values, lambda v: f"{v:,.0f}")


def verdicts(values: Iterable[str]) -> str:
    """`pass`, `FAIL x2` (a times sign), `2 pass, 1 inconclusive`: each verdict with how many runs gave it."""
    tally = Counter(values)
    shown = {v: (v.upper() if v == "fail" else v) for v in tally}
    if len(tally) == 1:
        ((verdict, n),) = tally.items()
        return shown[verdict] + (f" ×{n}" if n > 1 else "")
    return ", ".join(f"{n} {shown[v]}" for v, n in sorted(tally.items(), key=lambda i: -i[1]))


def group(records: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    """Records by `key`, in the order each value first appears."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r.get(key), []).append(r)
    return out


def _when(records: list[dict[str, Any]]) -> str:
    stamps = sorted(str(r["started_at"])[:16].replace("T", " ") for r in records)
    first, last = stamps[0], stamps[-1]
    if first == last:
        return f"{first} UTC"
    return f"{first}–{last[11:] if first[:10] == last[:10] else last} UTC"


def _machine(records: list[dict[str, Any]]) -> str:
    hosts = dict.fromkeys(
        f"`{h.get('hostname')}` ({h.get('cpus')} CPUs, {h.get('memory_gib')} GiB)"
        for h in (r["host"] for r in records)
    )
    return " and ".join(hosts)


def _load(records: list[dict[str, Any]]) -> str:
    hosts = [r["host"] for r in records]
    loads = [h.get("load_avg_1m") for h in hosts]
    said = (
        f"load average {span(loads, lambda v: f'{v:.1f}')} at the start of each run"
        if all(v is not None for v in loads)
        else "load average not recorded (manifests before 2026-12-07)"
    )
    spreads = _present(h.get("speed_spread") for h in hosts)
    if spreads:
        said += f", host CPU-speed spread ×{span(spreads, lambda v: f'{v:.2f}')} (p90/p10)"
    return said


def source_line(records: list[dict[str, Any]], data: str) -> str:
    """Where a block's run figures come from: when, which machine, how busy, which commands."""
    if not records:
        return f"_No runs in `{data}` yet ({NOTICE})._"
    commands = list(dict.fromkeys(f"`{r['command']}`" for r in records))
    given = not all(r.get("command_recorded") for r in records)
    revisions = ", ".join(dict.fromkeys(f"`{r['revision']}`" for r in records))
    return (
        f"_{len(records)} run{'s' if len(records) > 1 else ''}, {_when(records)}, on "
        f"{_machine(records)}; {_load(records)}; revision {revisions}. "
        f"Command{'s' if len(commands) > 1 else ''}: {', '.join(commands)}"
        + (" (as given when extracted: those manifests predate the command field)" if given else "")
        + f". Data: `{data}`, {NOTICE}._"
    )
