"""Rich views of a run: the live progress panel while shoppers run, and the result tables after."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flashlab.analysis.markdown import fmt, headline_rows
from flashlab.console import console

_VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow"}
_STATUS_MARK = {"pass": "[green]✔[/]", "fail": "[red]✘[/]", "inconclusive": "[yellow]?[/]"}


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


def print_summary(summary: dict[str, Any], run_dir: str | None = None) -> None:
    verdict = summary.get("verdict", "?")
    console.print(f"\nverdict: [{_VERDICT_STYLE.get(verdict, 'bold')}]{verdict.upper()}[/]")
    for reason in summary.get("verdict_reasons") or []:
        console.print(f"  [dim]-[/] {escape(reason)}")
    table = Table(title="result", show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column(justify="right")
    for key, value in headline_rows(summary):
        warn = key == "load generator" and value.startswith("OVERLOADED")
        table.add_row(key, f"[yellow]{escape(value)}[/]" if warn else escape(value))
    console.print(table)
    clauses = summary.get("hypothesis") or []
    if clauses:
        hyp = Table(title="steady-state hypothesis", title_justify="left")
        hyp.add_column("clause")
        hyp.add_column("measured", justify="right")
        hyp.add_column("ok", justify="center")
        for c in clauses:
            hyp.add_row(
                c["clause"],
                fmt(c.get("measured"), digits=3),
                _STATUS_MARK.get(c.get("status") or ("pass" if c["ok"] else "fail"), "?"),
            )
        console.print(hyp)
    if run_dir:
        console.print(f"run directory: [bold]{run_dir}[/]")
