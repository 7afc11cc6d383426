"""The run's headline as plain text, and the markdown summary CI shows (`--summary-md`, GitHub job summary).

`headline_rows(summary)` is the one list of headline figures (the CLI's result table uses it too);
`run_markdown` renders a run's summary.json: verdict, headline table, hypothesis clauses, failed
checks with example ids, the reasons for a non-pass, the report path.
"""

from __future__ import annotations

from typing import Any

from flashlab.analysis.capacity import headline as capacity_headline
from flashlab.analysis.capacity import ideal_headline
from flashlab.analysis.hypothesis import HOST_SPREAD_STEADY
from flashlab.analysis.hypothesis import bound_text
from flashlab.analysis.junit import number
from flashlab.analysis.stats import host_spreads
from flashlab.core.isolation import describe as describe_isolation

VERDICT_BADGE = {"pass": "✅ PASS", "fail": "❌ FAIL", "inconclusive": "⚠️ INCONCLUSIVE"}
STATUS_BADGE = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}
MAX_EXAMPLES = 5


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    """A headline figure: thousands separators, fixed decimals, "—" when not measured."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def pct(value: Any) -> float | None:
    return None if value is None else 100.0 * float(value)


def load_generator_text(gen: dict[str, Any]) -> str:
    """Load-generator health: an overloaded client inflates every latency."""
    healthy = gen.get("healthy")
    if healthy is None:
        return "—"  # not recorded (an older run)
    if healthy:
        return "healthy"
    lag, stalled = fmt(gen.get("lag_ms_p99"), " ms"), fmt(gen.get("stalled_s"), " s", 2)
    return f"OVERLOADED (lag p99 {lag}, stalled {stalled})"


def host_speed_text(host_speed: dict[str, Any] | None) -> str:
    """How steady the host CPU ran during the load, per side (flashlab.lab.hostspeed)."""
    spreads = host_spreads(host_speed)
    if not spreads:
        return "—"  # not measured (an older run, or too short a load)
    sides = ", ".join(f"{side} ×{spread:.2f}" for side, spread in spreads.items())
    steady = max(spreads.values()) <= HOST_SPREAD_STEADY
    return f"steady ({sides} p90/p10)" if steady else f"UNSTEADY ({sides} p90/p10)"


def headline_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of every headline figure, in display order."""
    lat = summary.get("latency_ms") or {}
    na = summary.get("na_checks") or {}

    def count(key: str, check: str | None = None) -> str:
        return "n/a" if (check or key) in na else fmt(summary.get(key))

    sold = "n/a" if summary.get("sold") is None and "sold" in summary else fmt(summary.get("sold"))
    return [
        ("sold / stock", f"{sold} / {fmt(summary.get('stock_initial'))}"),
        ("acknowledged purchases", fmt(summary.get("acknowledged"))),
        ("oversell", count("oversell")),
        ("lost acknowledged orders", count("lost_acknowledged")),
        ("duplicate purchases", count("duplicate_purchases")),
        ("phantom orders", count("phantom_orders")),
        ("undersold / gave up", f"{count('undersold')} / {count('gave_up', 'undersold')}"),
        ("premature sold-out answers", count("premature_sold_out")),
        ("shoppers / attempts", f"{fmt(summary.get('shoppers'))} / {fmt(summary.get('attempts'))}"),
        ("conflict rate", fmt(pct(summary.get("conflict_rate")), "%")),
        ("error rate", fmt(pct(summary.get("error_rate")), "%")),
        ("latency p50 / p99", f"{fmt(lat.get('p50'), ' ms')} / {fmt(lat.get('p99'), ' ms')}"),
        ("throughput", fmt(summary.get("throughput_rps"), " req/s")),
        ("sell-out", fmt(summary.get("sellout_s"), " s", 2)),
        ("load duration", fmt(summary.get("duration_s"), " s", 2)),
        ("load generator", load_generator_text(summary.get("generator") or {})),
        ("CPU split", describe_isolation(summary.get("isolation")).removeprefix("CPU split: ")),
        ("host CPU speed", host_speed_text(summary.get("host_speed"))),
        ("capacity (probe)", capacity_headline(summary)),
        ("ideal (at capacity)", ideal_headline(summary)),
    ]


def cell(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _clause_rows(clauses: list[dict[str, Any]]) -> list[str]:
    rows = ["| clause | measured | expected | result |", "|---|---:|---|---|"]
    for c in clauses:
        status = str(c.get("status") or ("pass" if c.get("ok") else "fail"))
        bound = f"{c.get('op')} {number(c.get('expected'))}"
        if c.get("ref") is not None:  # a relative bound: factor x reference = bound
            bound = bound_text(c)
        rows.append(
            f"| `{cell(c.get('clause'))}` | {cell(number(c.get('measured')))} "
            f"| {cell(bound)} | {STATUS_BADGE.get(status, status)} |"
        )
    return rows


def _failed_checks(checks: dict[str, Any]) -> list[str]:
    lines = []
    for name, check in checks.items():
        if check.get("ok"):
            continue
        if check.get("na"):
            lines.append(f"- **{name}**: n/a — {check['na']}")
            continue
        if check.get("ok") is None:
            lines.append(f"- **{name}**: unknown — {check.get('detail', '')}")
            continue
        examples = ", ".join(f"`{e}`" for e in (check.get("examples") or [])[:MAX_EXAMPLES])
        lines.append(
            f"- **{name}**: {number(check.get('count'))} — {check.get('detail', '')}"
            + (f" (examples: {examples})" if examples else "")
        )
    return lines


def run_markdown(summary: dict[str, Any], title: str, report: str | None = None) -> str:
    """A run's summary.json as a markdown section (what --summary-md writes)."""
    verdict = str(summary.get("verdict", "?"))
    out = [f"## flashlab `{title}`: {VERDICT_BADGE.get(verdict, verdict.upper())}", ""]
    reasons = summary.get("verdict_reasons") or []
    out += [f"- {r}" for r in reasons] + ([""] if reasons else [])
    out += ["| | |", "|---|---:|"]
    out += [f"| {cell(label)} | {cell(value)} |" for label, value in headline_rows(summary)]
    clauses = summary.get("hypothesis") or []
    if clauses:
        out += ["", "### Steady-state hypothesis", "", *_clause_rows(clauses)]
    failed = _failed_checks(summary.get("checks") or {})
    if failed:
        out += ["", "### Failed consistency checks", "", *failed]
    out += ["", f"run `{summary.get('run_id', '?')}`" + (f" · report `{report}`" if report else "")]
    return "\n".join(out) + "\n"


def matrix_markdown(cells: list[dict[str, Any]], title: str, report: str | None = None) -> str:
    """matrix.json's cells as a markdown section: one row per cell, surprises marked."""
    surprises = sum(1 for c in cells if c.get("unexpected") and c.get("expected") != "fail")
    head = "✅ as expected" if not surprises else f"❌ {surprises} unexpected"
    out = [f"## flashlab matrix `{title}`: {head}", ""]
    out += [
        "| strategy | fault | durability | verdict | expected | oversell | lost | p99 ms |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for c in cells:
        verdict = str(c.get("verdict"))
        mark = " ❗" if c.get("unexpected") and c.get("expected") != "fail" else ""
        out.append(
            f"| {cell(c.get('strategy'))} | {cell(c.get('fault'))} | {cell(c.get('durability'))} "
            f"| {VERDICT_BADGE.get(verdict, cell(verdict))}{mark} | {cell(c.get('expected'))} "
            f"| {fmt(c.get('oversell'))} | {fmt(c.get('lost_acknowledged'))} "
            f"| {fmt(c.get('p99_ms'), digits=0)} |"
        )
    errors = [c for c in cells if c.get("error")]
    if errors:
        out += ["", "### Cells that did not run", ""]
        out += [
            f"- `{c.get('strategy')}-{c.get('fault')}-{c.get('durability')}`: {c['error']}"
            for c in errors
        ]
    if report:
        out += ["", f"report `{report}`"]
    return "\n".join(out) + "\n"
