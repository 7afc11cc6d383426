"""`flashlab compare A B`: two run directories or trial sets, metric by metric; optionally a regression gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import JustifyMethod
from rich.table import Table

from flashlab.console import console
from flashlab.console import emit_json
from flashlab.core.errors import EXIT_OK
from flashlab.core.errors import EXIT_VERDICT_FAIL
from flashlab.core.errors import UserError
from flashlab.core.rundir import RunDirError

EPILOG = (
    "Examples:\n\n"
    "  flashlab run experiments/lua.yaml --repeat 5 --out reports/lua-x5\n\n"
    "  flashlab run experiments/lua.yaml --strategy lock --repeat 5 --out reports/lock-x5\n\n"
    "  flashlab compare reports/lua-x5 reports/lock-x5              # lua vs lock, same workload\n\n"
    "  flashlab compare baseline/ reports/new-x5 --fail-if-worse p99,throughput,oversell\n\n"
    "  flashlab compare A B --json > compare.json;  flashlab compare A B --html compare.html\n\n"
    "A is the baseline, B the candidate. Trial sets: B - A of the medians with a 95% CI (Welch "
    "t on the medians' standard errors); 'better'/'worse' only when the whole CI is on one side of 0, else 'within noise'. "
    "Anomaly counts (oversell, lost_acknowledged, ...) are exact (each side's worst trial). A "
    "single run has no CI: its timings say 'single run', never better/worse.\n\n"
    "Exit codes: 0 compared (no gated metric worse), 1 a --fail-if-worse metric is worse, "
    "2 bad input (different experiments without --force, a missing or incomplete trial)."
)


def _gate(value: str | None) -> list[str]:
    # start-up cost: only this path pays for matplotlib, prometheus_client
    from flashlab.analysis.trials import METRICS_BY_NAME

    if value is None:
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in METRICS_BY_NAME]
    if unknown or not names:
        raise UserError(
            f"--fail-if-worse: unknown metric(s) {', '.join(unknown) or '(empty)'} "
            f"(allowed: {', '.join(METRICS_BY_NAME)})"
        )
    return names


def compare(
    a: Annotated[Path, typer.Argument(help="Baseline: a run directory or a trial set.")],
    b: Annotated[Path, typer.Argument(help="Candidate: a run directory or a trial set.")],
    fail_if_worse: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated metrics; exit 1 if B is worse on any (e.g. p99,throughput)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Compare runs of different workloads (stock, shoppers, arrival, faults) anyway.",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the comparison as JSON.")
    ] = False,
    html: Annotated[
        Path | None, typer.Option(help="Also write the comparison as an HTML page.")
    ] = None,
) -> None:
    """Compare two runs or trial sets metric by metric: A, B, the difference and its CI."""
    # start-up cost: only this path pays for matplotlib, prometheus_client
    from flashlab.analysis.compare import compare as run_compare

    gated = _gate(fail_if_worse)
    try:
        result = run_compare(a, b, force=force)
    except RunDirError as exc:
        raise UserError(str(exc)) from None
    if html is not None:
        # start-up cost: only this path pays for matplotlib, jinja2, prometheus_client
        from flashlab.analysis.report import write_comparison_report

        write_comparison_report(result, html)
    worse = result.worse(gated)
    if json_output:
        emit_json(result.to_dict() | {"gate": gated, "worse": [r.metric for r in worse]})
    else:
        _print(result, html)
        if gated:
            names = ", ".join(r.metric for r in worse)
            console.print(
                f"[bold red]regression:[/] B is worse on {names}"
                if worse
                else f"[green]gate passed:[/] B is not worse on {', '.join(gated)}"
            )
    raise typer.Exit(EXIT_VERDICT_FAIL if worse else EXIT_OK)


_OUTCOME_STYLE = {"better": "green", "worse": "bold red", "within noise": "dim", "same": "dim"}


def _print(result, html: Path | None) -> None:
    # start-up cost: only this path pays for matplotlib, jinja2, prometheus_client
    from flashlab.analysis.report import fmt
    from flashlab.analysis.report import kind_of

    title = (
        f"A {result.a.path} ({result.a.kind}, n={result.a.n})  vs  "
        f"B {result.b.path} ({result.b.kind}, n={result.b.n})"
    )
    table = Table(title=title, title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("metric", "left"), ("A", "right"), ("B", "right"), ("B − A", "right"),
        ("95% CI", "right"), ("B is", "left"),
    )  # fmt: skip
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for r in result.rows:
        kind = kind_of(r.path)
        ci = (
            f"[{fmt(r.diff_ci_low, kind)[0]}, {fmt(r.diff_ci_high, kind)[0]}]"
            if r.basis == "CI"
            else ("exact" if r.basis == "exact" else "—")
        )
        style = _OUTCOME_STYLE.get(r.outcome, "yellow")
        table.add_row(
            r.metric,
            fmt(r.a, kind)[0],
            fmt(r.b, kind)[0],
            fmt(r.diff, kind)[0],
            ci,
            f"[{style}]{r.outcome}[/]",
        )
    console.print(table)
    if result.differences:
        console.print(f"[dim]differences:[/] {'; '.join(result.differences)}", soft_wrap=True)
    if html is not None:
        console.print(f"comparison: [bold]{html}[/]")


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(compare)
