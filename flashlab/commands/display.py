"""Rich views of a run: the live progress panel while shoppers run, and the result tables after."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flashlab.console import console
from flashlab.core.isolation import describe as describe_isolation

VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow"}
_STATUS_MARK = {"pass": "[green]✔[/]", "fail": "[red]✘[/]", "inconclusive": "[yellow]?[/]"}


def verdict_line(verdict: str, reasons: list[str] | None = None) -> str:
    """`verdict: PASS` (green) / FAIL (red) / INCONCLUSIVE (amber), then one line per reason."""
    from flashlab.core.errors import verdict_exit_code

    style = VERDICT_STYLE.get(verdict, "bold")
    lines = [f"verdict: [{style}]{verdict.upper()}[/] [dim](exit {verdict_exit_code(verdict)})[/]"]
    lines += [f"  [dim]·[/] {reason}" for reason in reasons or []]
    return "\n".join(lines)


class LiveRun:
    """Live panel: phase, shoppers launched, in flight, sold/stock, answers by code."""

    def __init__(self, shoppers: int, stock: int, enabled: bool = True) -> None:
        self.shoppers, self.stock = shoppers, stock
        self.phase = "starting"
        self.snapshot: Any = None
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.bar.add_task("shoppers launched", total=shoppers)
        self.live = (
            Live(self._render(), console=console, refresh_per_second=8, transient=True)
            if enabled
            else None
        )
        self._last = 0.0

    def __enter__(self) -> LiveRun:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.__exit__(*exc)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        if self.live:
            self.live.update(self._render())
        elif not console.is_terminal:
            console.print(f"[dim]… {phase}[/]")

    def restart(self, label: str) -> None:
        """A new trial on the same display: the bar back to zero, the label in the phase."""
        self.snapshot = None
        self.bar.reset(self.task)
        self.set_phase(label)

    def update(self, progress: Any) -> None:
        self.snapshot = progress
        now = time.monotonic()
        if self.live and now - self._last > 0.1:
            self._last = now
            self.bar.update(self.task, completed=getattr(progress, "launched", 0))
            self.live.update(self._render())

    def _render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        p = self.snapshot
        sold = getattr(p, "ok", 0) if p else 0
        table.add_row(
            f"[dim]phase[/] {self.phase}",
            f"[dim]in flight[/] {getattr(p, 'in_flight', 0) if p else 0}",
            f"[dim]sold[/] {sold}/{self.stock}",
        )
        codes = dict(getattr(p, "by_code", {}) or {}) if p else {}
        if codes:
            table.add_row(
                "[dim]answers[/] " + "  ".join(f"{k}={v}" for k, v in sorted(codes.items()))
            )
        return Group(self.bar, table)


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def print_summary(summary: dict[str, Any], run_dir: str | None = None) -> None:
    console.print()
    console.print(
        verdict_line(summary.get("verdict", "?"), summary.get("verdict_reasons")), soft_wrap=True
    )
    lat = summary.get("latency_ms") or {}
    table = Table(title="result", show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column(justify="right")
    rows = [
        ("sold / stock", f"{_fmt(summary.get('sold'))} / {_fmt(summary.get('stock_initial'))}"),
        ("oversell", _fmt(summary.get("oversell"))),
        ("lost acknowledged orders", _fmt(summary.get("lost_acknowledged"))),
        ("duplicate purchases", _fmt(summary.get("duplicate_purchases"))),
        ("phantom orders", _fmt(summary.get("phantom_orders"))),
        (
            "shoppers / attempts",
            f"{_fmt(summary.get('shoppers'))} / {_fmt(summary.get('attempts'))}",
        ),
        ("conflict rate", _fmt(_pct(summary.get("conflict_rate")), "%")),
        ("error rate", _fmt(_pct(summary.get("error_rate")), "%")),
        ("latency p50 / p99", f"{_fmt(lat.get('p50'), ' ms')} / {_fmt(lat.get('p99'), ' ms')}"),
        ("throughput", _fmt(summary.get("throughput_rps"), " req/s")),
        ("sell-out", _fmt(summary.get("sellout_s"), " s", 2)),
        ("load duration", _fmt(summary.get("duration_s"), " s", 2)),
        ("load generator", _generator(summary.get("generator") or {})),
        ("CPU split", describe_isolation(summary.get("isolation")).removeprefix("CPU split: ")),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    clauses = summary.get("hypothesis") or []
    if clauses:
        hyp = Table(title="steady-state hypothesis", title_justify="left")
        hyp.add_column("clause")
        hyp.add_column("measured", justify="right")
        hyp.add_column("class")
        hyp.add_column("status", justify="center")
        for c in clauses:
            status = c.get("status") or ("pass" if c["ok"] else "fail")
            hyp.add_row(
                c["clause"],
                _fmt(c.get("measured"), digits=3),
                c.get("class", ""),
                f"{_STATUS_MARK.get(status, '')} {status}",
            )
        console.print(hyp)
    if run_dir:
        console.print(f"run directory: [bold]{run_dir}[/]")


def _generator(gen: dict[str, Any]) -> str:
    """Load-generator health: an overloaded client inflates every latency above."""
    healthy = gen.get("healthy")
    if healthy is None:
        return "—"  # not recorded (an older run)
    if healthy:
        return "healthy"
    lag, stalled = _fmt(gen.get("lag_ms_p99"), " ms"), _fmt(gen.get("stalled_s"), " s", 2)
    return f"[yellow]OVERLOADED (lag p99 {lag}, stalled {stalled})[/]"


def _pct(value: Any) -> float | None:
    return None if value is None else 100.0 * float(value)


# --- trial sets --------------------------------------------------------------------------------

# Metrics shown in the trial-set table (names from flashlab.analysis.trials.KEY_METRICS).
SET_TABLE_METRICS = (
    "p50",
    "p99",
    "throughput",
    "sellout",
    "conflict_rate",
    "oversell",
    "lost_acknowledged",
)


def print_trial_done(index: int, outcome: Any) -> None:
    """One line per finished trial: its verdict and headline numbers."""
    s = outcome.summary
    lat = s.get("latency_ms") or {}
    style = VERDICT_STYLE.get(s.get("verdict", ""), "bold")
    console.print(
        f"trial {index}: [{style}]{str(s.get('verdict', '?')).upper()}[/]"
        f"  p99 {_fmt(lat.get('p99'), ' ms')}  throughput {_fmt(s.get('throughput_rps'), ' req/s')}"
        f"  sold {_fmt(s.get('sold'))}/{_fmt(s.get('stock_initial'))}"
        f"  generator {_generator(s.get('generator') or {})}"
    )


def _metric_text(m: dict[str, Any], key: str) -> str:
    from flashlab.analysis.report import fmt, kind_of  # the report's formats, one per kind

    return fmt(m.get(key), kind_of(m["path"]))[0]


def print_trial_set(result: dict[str, Any], set_dir: str) -> None:
    """The set's verdict, its clauses on the CI bound, and the key metrics' medians and CIs."""
    from flashlab.analysis.report import fmt, kind_of

    console.print()
    console.print(verdict_line(result["verdict"], result.get("verdict_reasons")), soft_wrap=True)
    metrics = Table(title=f"{result['repeat']} trials: median and 95% CI", title_justify="left")
    for col, justify in (
        ("metric", "left"), ("median", "right"), ("95% CI", "right"), ("trials", "right"),
    ):  # fmt: skip
        metrics.add_column(col, justify=justify)
    for name in SET_TABLE_METRICS:
        m = (result.get("metrics") or {}).get(name)
        if m is None:
            continue
        ci = "—" if m.get("ci_low") is None else (
            f"[{_metric_text(m, 'ci_low')}, {_metric_text(m, 'ci_high')}]"
        )  # fmt: skip
        values = "  ".join(fmt(v, kind_of(m["path"]))[0] for v in m["values"])
        metrics.add_row(m["label"], _metric_text(m, "median"), ci, values)
    console.print(metrics)
    clauses = result.get("hypothesis") or []
    if clauses:
        hyp = Table(title="hypothesis over the trials", title_justify="left")
        for col in ("clause", "class", "per trial", "status"):
            hyp.add_column(col)
        for c in clauses:
            hyp.add_row(
                c["clause"],
                c["class"],
                " ".join(c["trials"]),
                f"{_STATUS_MARK.get(c['status'], '')} {c['status']}",
            )
        console.print(hyp)
    console.print(f"trial set: [bold]{set_dir}[/]  report: [bold]{set_dir}/trials.html[/]")
