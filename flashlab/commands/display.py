"""Rich views of a run: the live progress panel while shoppers run, and the result tables after."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Group
from rich.console import JustifyMethod
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.table import Table

from flashlab.analysis.capacity import quantity
from flashlab.analysis.capacity import unit_of
from flashlab.analysis.hypothesis import bound_text
from flashlab.analysis.markdown import fmt
from flashlab.analysis.markdown import headline_rows
from flashlab.analysis.markdown import load_generator_text
from flashlab.console import console
from flashlab.core.errors import verdict_exit_code
from flashlab.lab.events import Phase
from flashlab.lab.events import RunEvents

VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow"}
_STATUS_MARK = {"pass": "[green]✔[/]", "fail": "[red]✘[/]", "inconclusive": "[yellow]?[/]"}


def verdict_line(verdict: str, reasons: list[str] | None = None) -> str:
    """`verdict: PASS` (green) / FAIL (red) / INCONCLUSIVE (amber), then one line per reason."""
    style = VERDICT_STYLE.get(verdict, "bold")
    lines = [f"verdict: [{style}]{verdict.upper()}[/] [dim](exit {verdict_exit_code(verdict)})[/]"]
    lines += [f"  [dim]·[/] {reason}" for reason in reasons or []]
    return "\n".join(lines)


class LiveRun(RunEvents):
    """Live panel: phase, shoppers launched, in flight, sold/stock, answers by code.

    A listener of the run's events (flashlab.lab.events): register it on `RunRequest.events`.
    `show_phases=False` (--json, --quiet) keeps the phases off the screen; `trial_lines` prints
    one line per finished trial of a set."""

    def __init__(
        self,
        shoppers: int,
        stock: int,
        enabled: bool = True,
        show_phases: bool = True,
        trial_lines: bool = False,
    ) -> None:
        self.shoppers, self.stock = shoppers, stock
        self.show_phases, self.trial_lines = show_phases, trial_lines
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live:
            self.live.__exit__(exc_type, exc, tb)

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

    # --- run events ---

    def phase_started(self, phase: Phase) -> None:
        if self.show_phases:
            self.set_phase(phase.label)

    def progress(self, snapshot: Any) -> None:
        self.update(snapshot)

    def trial_started(self, index: int, of: int, seed: int) -> None:
        if self.show_phases:
            self.restart(f"trial {index}/{of} (seed {seed})")

    def trial_finished(self, index: int, outcome: Any) -> None:
        if self.trial_lines:
            print_trial_done(index, outcome)

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


def print_summary(summary: dict[str, Any], run_dir: str | None = None) -> None:
    console.print()
    console.print(
        verdict_line(summary.get("verdict", "?"), summary.get("verdict_reasons")), soft_wrap=True
    )
    table = Table(title="result", show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column(justify="right")
    for key, value in headline_rows(summary):
        warn = key == "load generator" and value.startswith("OVERLOADED")
        table.add_row(key, f"[yellow]{escape(value)}[/]" if warn else escape(value))
    console.print(table)
    for name, reason in (summary.get("na_checks") or {}).items():
        console.print(f"[dim]n/a {name}: {escape(reason)}[/]", soft_wrap=True)
    clauses = summary.get("hypothesis") or []
    if clauses:
        hyp = Table(title="steady-state hypothesis", title_justify="left")
        hyp.add_column("clause")
        hyp.add_column("measured", justify="right")
        hyp.add_column("relative bound (this run)")
        hyp.add_column("class")
        hyp.add_column("status", justify="center")
        for c in clauses:
            status = c.get("status") or ("pass" if c["ok"] else "fail")
            hyp.add_row(
                escape(c["clause"]),
                quantity(c.get("measured"), unit_of(str(c.get("key")))),
                escape(bound_text(c)) if c.get("ref") else "",  # a number: in the clause
                c.get("class", ""),
                f"{_STATUS_MARK.get(status, '')} {status}",
            )
        console.print(hyp)
    if run_dir:
        console.print(f"run directory: [bold]{run_dir}[/]")


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
    "p99_over_drain",  # timing over each trial's measured capacity (docs/METHOD.md, section 5)
    "throughput_over_buy",
)


def print_trial_done(index: int, outcome: Any) -> None:
    """One line per finished trial: its verdict and headline numbers."""
    s = outcome.summary
    lat = s.get("latency_ms") or {}
    style = VERDICT_STYLE.get(s.get("verdict", ""), "bold")
    console.print(
        f"trial {index}: [{style}]{str(s.get('verdict', '?')).upper()}[/]"
        f"  p99 {fmt(lat.get('p99'), ' ms')}  throughput {fmt(s.get('throughput_rps'), ' req/s')}"
        f"  sold {fmt(s.get('sold'))}/{fmt(s.get('stock_initial'))}"
        f"  generator {load_generator_text(s.get('generator') or {})}"
    )


def _metric_text(m: dict[str, Any], key: str) -> str:
    # start-up cost: only this path pays for matplotlib, jinja2, prometheus_client
    from flashlab.analysis.report import fmt  # the report's formats, one per kind
    from flashlab.analysis.report import kind_of  # the report's formats, one per kind

    return fmt(m.get(key), kind_of(m["path"]))[0]


def print_trial_set(result: dict[str, Any], set_dir: str) -> None:
    """The set's verdict, its clauses on the CI bound, and the key metrics' medians and CIs."""
    # start-up cost: only this path pays for matplotlib, jinja2, prometheus_client
    from flashlab.analysis.report import fmt
    from flashlab.analysis.report import kind_of

    console.print()
    console.print(verdict_line(result["verdict"], result.get("verdict_reasons")), soft_wrap=True)
    metrics = Table(title=f"{result['repeat']} trials: median and 95% CI", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("metric", "left"), ("median", "right"), ("95% CI", "right"), ("trials", "right"),
    )  # fmt: skip
    for col, justify in columns:
        metrics.add_column(col, justify=justify)
    shares = [n for n in result.get("metrics") or {} if n.endswith("_unit_share")]
    for name in (*SET_TABLE_METRICS, *shares):  # shares: per behaviour profile (bots vs humans)
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
