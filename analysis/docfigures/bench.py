"""The blocks drawn from bench/results.jsonl: the latest results, the machine, stability, actors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flashlab.analysis.docfigures import text
from flashlab.analysis.docfigures.data import BENCH_RESULTS
from flashlab.analysis.docfigures.data import latest_bench
from flashlab.core.errors import UserError

MET = {True: "met", False: "**missed**", None: "n/a"}
SOURCE = f"`{BENCH_RESULTS.as_posix()}`"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def _revision(line: dict[str, Any]) -> str:
    rev = line.get("git_revision") or {}
    return (rev.get("commit") or "?")[:8] + ("+dirty" if rev.get("dirty") else "")


def _target_rows(name: str, line: dict[str, Any]) -> list[str]:
    load = (line.get("machine") or {}).get("load_avg_1m")
    where = f"| {name} | {line['started_at']} | `{line.get('command')}` | {_fmt(load)} | {_revision(line)}"
    targets = line.get("targets") or {}
    if not targets:
        return [f"{where} | (no target: tracked measurement) | - | - |"]
    return [
        f"{where} | `{key}` {t['target']} | {_fmt(t['value'])} | {MET[t['met']]} |"
        for key, t in targets.items()
    ]


def latest(root: Path) -> str:
    """docs/BENCHMARKS.md: each benchmark's newest full-size line: its targets and ratios."""
    lines = latest_bench(root)
    rows = [
        f"_The newest full-size line of each benchmark in {SOURCE}, with the command that wrote it "
        f"and the 1-minute load average when it started ({text.NOTICE}; `flashlab bench NAME` "
        "appends a line and rewrites it)._",
        "",
        "| benchmark | measured at | command | load | revision | target | value | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, line in lines.items():
        rows += _target_rows(name, line)
    rows += ["", "Ratios of the latest run of each benchmark:", ""]
    for name, line in lines.items():
        pairs = ", ".join(f"`{k}`={_fmt(v)}" for k, v in line["ratios"].items())
        rows.append(f"- **{name}**: {pairs}")
    return "\n".join(rows)


def machine(root: Path) -> str:
    """docs/BENCHMARKS.md: the machine the latest lines were measured on, as they record it."""
    lines = latest_bench(root)
    said: dict[str, list[str]] = {}
    for name, line in lines.items():
        m = line.get("machine") or {}
        desc = (
            f"{m.get('cpus')} vCPUs, {m.get('mem_gib')} GiB, Linux {m.get('kernel')}, "
            f"Python {m.get('python')}"
        )
        said.setdefault(desc, []).append(f"`{name}`")
    loads = (line.get("machine", {}).get("load_avg_1m") for line in lines.values())
    return (
        f"From the `machine` field of the latest line of each benchmark in {SOURCE}: "
        + "; ".join(f"{desc} ({', '.join(names)})" for desc, names in said.items())
        + f". Load average when those lines started: {text.span(loads, lambda v: f'{v:.2f}')}; "
        "other engineers' stacks share these cores."
    )


def _line(root: Path, bench: str) -> dict[str, Any]:
    line = latest_bench(root).get(bench)
    if line is None:
        raise UserError(f"{root / BENCH_RESULTS}: no full-size '{bench}' line")
    return line


def _said_by(line: dict[str, Any]) -> str:
    load = (line.get("machine") or {}).get("load_avg_1m")
    return (
        f"_The `{line['bench']}` line of {line['started_at']} in {SOURCE}: `{line.get('command')}`, "
        f"revision {_revision(line)}, load average {_fmt(load)} at its start ({text.NOTICE})._"
    )


def _table(line: dict[str, Any], header: str, rows: list[str]) -> str:
    """The line's source sentence, then a markdown table: `header`, its separator, `rows`."""
    separator = "|" + "---|" * (header.count("|") - 1)
    return "\n".join([_said_by(line), "", header, separator, *rows])


def _stability_row(cell: str, c: dict[str, Any]) -> str:
    engine, _, isolation = cell.partition("-")
    label = f"{'Ray' if engine == 'ray' else engine}, isolation {'on' if isolation == 'auto' else 'off'}"
    tally = text.verdicts(v for v, n in (c.get("verdicts") or {}).items() for _ in range(n))
    n = sum((c.get("verdicts") or {}).values())

    def cv(key: str) -> str:
        return text.pct([c.get(key)])

    return (
        f"| {label} | {tally} | {c['p99_ms_median']:,.0f} | {cv('p99_cv')} "
        f"| {c['throughput_rps_median']:,.0f} req/s | {cv('throughput_cv')} "
        f"| {cv('p99_cv_host_adjusted')} / {cv('throughput_cv_host_adjusted')} "
        f"| {cv('stack_unit_us_cv')} | {c.get('generator_healthy')}/{n} |"
    )


def stability(root: Path) -> str:
    """docs/BENCHMARKS.md: the stability benchmark's cells (engine x isolation) from its raw data."""
    line = _line(root, "stability")
    header = (
        "| cell | verdicts | p99 median (ms) | p99 CV | throughput median | throughput CV "
        "| host-adjusted CV p99 / thr. | host probe CV | healthy generator |"
    )
    return _table(line, header, [_stability_row(n, c) for n, c in line["raw"]["cells"].items()])


def actors(root: Path) -> str:
    """docs/SCALE.md: answered rate, p99, start-up and memory for 1, 2 and 4 Ray actors."""
    line = _line(root, "actors")
    header = (
        "| actors | answered req/s | per actor | p99 (from intended send) | Ray start-up "
        "| peak RSS (whole tree) |"
    )
    rows = [
        f"| {a['actors']} | {a['rate_per_s']:,.0f} | {a['rate_per_actor']:,.0f} "
        f"| {text.ms([a['response_p99_ms']])} | {a['startup_s']:.1f} s "
        f"| {a['peak_rss_mib']:,.0f} MiB |"
        for a in line["raw"]["actors"].values()
    ]
    return _table(line, header, rows)


def _sweep_row(cell: dict[str, Any], best: float) -> str:
    c = cell["connections"]
    wrk_buy, loop_buy = cell["wrk_buy_rps"], cell["closed_loop_buy_rps"]
    return (
        f"| {c} | {cell['healthz_rps']:,.0f} | {wrk_buy:,.0f} ({wrk_buy / best:.2f}) "
        f"| {loop_buy:,.0f} | {loop_buy / wrk_buy:.2f} | {wrk_buy / cell['healthz_rps']:.2f} "
        f"| {cell['wrk_buy_p99_ms']:,.0f} ms |"
    )


def ceiling(root: Path) -> str:
    """docs/BENCHMARKS.md: the ceiling run's connection sweep, generator efficiency and spike."""
    line = _line(root, "ceiling")
    raw, ratios = line["raw"], line["ratios"]
    if "sweep" not in raw:
        raise UserError(f"{root / BENCH_RESULTS}: the newest 'ceiling' line has no sweep")
    best = ratios["best_wrk_buy_rps"]
    header = (
        "| connections | wrk /healthz req/s | wrk buy req/s (of best) | lab closed loop buy req/s "
        "| closed loop / wrk | buy / healthz | wrk buy p99 |"
    )
    table = _table(line, header, [_sweep_row(cell, best) for cell in raw["sweep"]])
    eff, spike = raw["efficiency"], raw["spike"]
    notes = [
        "",
        "",
        f"- Knee (best wrk purchase rate): **{ratios['knee_connections']} connections**, "
        f"{best:,.0f} req/s.",
        f"- `generator_efficiency` at {eff['connections']} connections (the lab's "
        f"`connections: auto`): wrk {eff['wrk'][0]:,.0f}, loop {eff['closed_loop'][0]:,.0f}, "
        f"loop {eff['closed_loop'][1]:,.0f}, wrk {eff['wrk'][1]:,.0f} req/s; loops / wrks = "
        f"**{_fmt(ratios['generator_efficiency'])}**.",
        f"- Strategies at {raw['connections']} connections: lua purchases / adjacent /healthz = "
        f"**{_fmt(ratios.get('lua'))}** ({raw['strategies']['lua']['rps']:,.0f} vs "
        f"{raw['strategies']['lua']['ceiling_rps']:,.0f} req/s; healthz min/max over the run "
        f"{_fmt(ratios['ceiling_min_over_max'])}).",
        f"- The lab's {spike['shoppers']:,}-shopper lua spike on this stack "
        f"({spike['connections']} connections): {spike['throughput_rps']:,.0f} req/s, p99 "
        f"{spike['p99_ms']:,.0f} ms; wrk at the knee right before and after it: "
        f"{_rates(spike['knee_wrk_buy_rps'])} req/s, so `spike_over_knee_wrk` = "
        f"**{_fmt(ratios['spike_over_knee_wrk'])}** ({_fmt(ratios['spike_over_best_wrk'])} of the "
        f"sweep's best cell).",
    ]
    return table + "\n".join(notes)


def _rates(values: list[float]) -> str:
    return " and ".join(f"{v:,.0f}" for v in values)
