"""Self-contained HTML pages: a run's report.html, and the pages of a matrix, trial set, comparison, sweep.

Numbers come only from summary.json (the analysis layer's verdict and statistics; computed with
flashlab.analysis.summary.summarize and written first when missing); plots come from the run's own files
via flashlab.core.rundir.load_run and flashlab.analysis.plots. Every shown measurement goes through `fmt`, and
carries `data-key` (its dotted path in summary.json) and `data-fmt` (its format kind), so a test
or a script can check each figure against the JSON. Images are inline base64 PNGs and the CSS is
inline: the file opens offline and makes no network request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from markupsafe import escape

from flashlab.analysis import plots
from flashlab.analysis.capacity import headline as capacity_headline
from flashlab.analysis.checker import LOADED_CHECKS
from flashlab.analysis.markdown import host_speed_text
from flashlab.analysis.summary import ensure_summary
from flashlab.analysis.summary_schema import PERCENTILE_KEYS
from flashlab.analysis.sweep_results import SWEEP_HTML
from flashlab.analysis.sweep_results import plotted_metrics
from flashlab.analysis.trials import TRIALS_HTML
from flashlab.analysis.trials import metric_intervals
from flashlab.core.errors import (  # the exit code the banner shows; the matrix rule
    verdict_exit_code,
)
from flashlab.core.errors import (  # the exit code the banner shows; the matrix rule
    verdict_unexpected,
)
from flashlab.core.isolation import describe as describe_isolation
from flashlab.core.rundir import REPORT
from flashlab.core.rundir import Run
from flashlab.core.rundir import RunDirError
from flashlab.core.rundir import load_run
from flashlab.core.rundir import write_text_atomic

MATRIX_JSON = "matrix.json"
MATRIX_HTML = "matrix.html"
MAX_EVIDENCE_ROWS = 5  # example operations shown per anomaly

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("flashlab.analysis", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# --- number formatting: one rule per kind, so the same quantity always looks the same -----------

RATE_SUFFIXES = ("_rate", "_share", "availability")
KIND_SUFFIX = {"pct": "%", "cpu": "%", "ms": " ms", "s": " s", "rps": " req/s"}


def kind_of(path: str) -> str:
    """Format kind for a dotted summary path, from its last parts' names (e.g. latency_ms.p99 -> ms)."""
    parts = [p for p in path.split(".") if not p.isdigit()]
    last = parts[-1] if parts else ""
    parent = parts[-2] if len(parts) > 1 else ""
    if last.endswith(RATE_SUFFIXES):
        return "pct"
    if "_pct" in last:  # already in percent (cpu_pct_max), not a 0..1 rate
        return "cpu"
    if last.endswith("_ms") or parent.endswith("_ms") or "_ms_" in last:  # lag_ms_p99
        return "ms"
    if last.endswith("_rps"):
        return "rps"
    if last.endswith("_s"):
        return "s"
    if last == "rank_correlation":
        return "corr"
    return "num"


# How each unit-bearing kind is written (the suffix from KIND_SUFFIX follows).
KIND_FORMAT = {
    "pct": ".2f",
    "cpu": ",.1f",
    "ms": ",.1f",
    "s": ",.2f",
    "rps": ",.1f",
    "corr": "+.3f",
}


def fmt(value: Any, kind: str = "num") -> tuple[str, str]:
    """(text, effective kind) for a summary value; None is an em dash, never 0."""
    if value is None:
        return "—", "none"
    if isinstance(value, bool):
        return ("yes" if value else "no"), "bool"
    if isinstance(value, str):
        return value, "str"
    if isinstance(value, int) and kind in ("num", "int"):
        return f"{value:,}", "int"
    if not isinstance(value, int | float):
        return json.dumps(value), "json"
    number = float(value)
    if kind == "pct":
        number *= 100
    if kind in KIND_FORMAT:
        return f"{number:{KIND_FORMAT[kind]}}{KIND_SUFFIX.get(kind, '')}", kind
    # Integral floats (a hypothesis threshold like `oversell == 0`) read as integers.
    return (f"{int(number):,}", "int") if number.is_integer() else (f"{number:,.3f}", "num")


def value_at(data: Any, path: str) -> Any:
    return plots.summary_value(data, path)


def make_cell(data: dict[str, Any]) -> Callable[..., Markup]:
    """The template's `v(path)`: a <span> with the formatted value and its data-key/data-fmt."""

    def v(path: str, like: str | None = None, tag: str = "span", cls: str = "num") -> Markup:
        # `like`: format as this other key would be (a hypothesis clause's measured value
        # is a latency if the clause names latency_ms.p99).
        text, kind = fmt(value_at(data, path), kind_of(like or path))
        return Markup(
            f'<{tag} class="{escape(cls)}" data-key="{escape(path)}" data-fmt="{kind}">'
            f"{escape(text)}</{tag}>"
        )

    return v


# --- run report ---------------------------------------------------------------------------------

# The checks' rows come from the checks themselves (`Check.report_row`), in registry order.
CHECK_ROWS: list[tuple[str, list[str]]] = [
    (c.report_row, list(c.summary_keys())) for c in LOADED_CHECKS.values() if c.report_row
]
KEY_NUMBERS: list[tuple[str, list[str]]] = [
    ("sold / stock", ["sold", "stock_initial"]),
    *CHECK_ROWS,
    ("FCFS inversion rate", ["fairness.fcfs_inversion_rate"]),
    ("stock remaining", ["stock_remaining"]),
    ("conflict rate (409 busy)", ["conflict_rate"]),
    ("success rate", ["success_rate"]),
    ("error rate", ["error_rate"]),
    ("availability", ["availability"]),
    ("response p50 / p95 / p99", ["latency_ms.p50", "latency_ms.p95", "latency_ms.p99"]),
    (
        "service p50 / p95 / p99",
        ["service_latency_ms.p50", "service_latency_ms.p95", "service_latency_ms.p99"],
    ),
    ("throughput", ["throughput_rps"]),
    ("sell-out (truth)", ["sellout_s"]),
    ("first sold_out answer", ["sellout_first_answer_s"]),
    ("shoppers / attempts", ["shoppers", "attempts"]),
    ("load duration", ["duration_s"]),
    ("indeterminate rate", ["indeterminate_rate"]),
    ("load generator healthy", ["generator.healthy"]),
    ("generator loop lag p99 / max", ["generator.lag_ms_p99", "generator.lag_ms_max"]),
    ("generator stalled / CPU max", ["generator.stalled_s", "generator.cpu_pct_max"]),
    # The machine, probed before the load (flashlab.analysis.capacity), and timing relative to it.
    ("capacity: buy / gateway / wrk buy", ["capacity.buy_rps", "capacity.gateway_rps",
                                           "capacity.wrk_buy_rps"]),
    ("capacity: buy p50 · probe took", ["capacity.buy_p50_ms", "capacity.duration_s"]),
    ("ideal (at capacity): drain / sell-out", ["ideal.drain_s", "ideal.sellout_s"]),
    ("p99 / drain · throughput / capacity · sell-out / ideal", [
        "relative.p99_over_drain", "relative.throughput_over_buy", "relative.sellout_over_ideal",
    ]),
]  # fmt: skip
LATENCY_SETS = [
    ("response time (all)", "latency_ms"),
    ("service time (all)", "service_latency_ms"),
    ("response time (ok only)", "latency_ok_ms"),
    ("service time (ok only)", "service_latency_ok_ms"),
]
EVIDENCE_COLUMNS = [
    "op_id",
    "user_id",
    "profile",
    "attempt",
    "type",
    "status",
    "code",
    "order_id",
    "remaining",
    "error",
]


def _evidence(run: Run, examples: list[str]) -> list[dict[str, Any]]:
    """History rows (ops) or truth orders matching a check's example ids; raw evidence, not summary numbers."""
    h = run.history
    ids = set(examples[:MAX_EVIDENCE_ROWS])
    rows = h[h["op_id"].isin(ids) | h["order_id"].isin(ids) | h["user_id"].isin(ids)]
    out: list[dict[str, Any]] = [
        {c: _cell_text(r[c]) for c in EVIDENCE_COLUMNS} | {"source": "history"}
        for _, r in rows.head(MAX_EVIDENCE_ROWS * 2).iterrows()
    ]
    known = {r["order_id"] for r in out}
    for order in run.truth.orders:
        if (order.order_id in ids or order.user_id in ids) and order.order_id not in known:
            out.append(
                dict.fromkeys(EVIDENCE_COLUMNS, "")
                | {
                    "user_id": order.user_id,
                    "order_id": order.order_id,
                    "source": "redis",
                    "type": "order",
                    "error": f"server ts_ms {order.ts_ms}",
                }
            )
    return out[: MAX_EVIDENCE_ROWS * 2]


def _cell_text(value: Any) -> str:
    """A history cell as text: nulls empty, and `remaining` (float once pandas saw a null) as an integer."""
    if value is None or (isinstance(value, float) and value != value):  # NaN != NaN
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _anomalies(run: Run, summary: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name, result in (summary.get("checks") or {}).items():
        if result.get("ok", True) is not False:
            continue
        examples = [str(e) for e in result.get("examples") or []]
        found.append({"name": name, "examples": examples, "evidence": _evidence(run, examples)})
    return found


def _figures(run: Run, summary: dict[str, Any]) -> dict[str, str]:
    """Inline images, one data URI per plot; a plot that cannot be drawn is left out, not fatal."""
    makers: dict[str, Callable[[], Any]] = {
        "latency_cdf": lambda: plots.latency_cdf(run),
        "timeline": lambda: plots.timeline(run),
        "conflict_rate": lambda: plots.conflict_rate(run),
        "fairness": lambda: plots.fairness_deciles(summary),
    }
    out = {}
    for name, make in makers.items():
        if run.history.empty and name != "fairness":
            continue
        out[name] = plots.data_uri(make())
    return out


def _table_columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def _manifest_view(manifest: dict[str, Any]) -> dict[str, Any]:
    exp = manifest.get("experiment") or {}
    stack = manifest.get("stack") or {}
    target = exp.get("target") or {}
    return {
        "synthetic": bool(manifest.get("synthetic")),
        "target": target.get("name") if isinstance(target, dict) else None,
        "target_file": target.get("file") if isinstance(target, dict) else None,
        "experiment_name": exp.get("name", ""),
        "description": exp.get("description", ""),
        "strategy": (exp.get("product") or {}).get("strategy", ""),
        "durability": (exp.get("stack") or {}).get("durability", ""),
        "platform": stack.get("platform") or (exp.get("stack") or {}).get("platform", ""),
        "faults": [
            f"{f.get('fault')} at {f.get('at_s')} s for {f.get('duration_s')} s"
            for f in exp.get("faults") or []
        ],
        "facts": {
            "run id": manifest.get("run_id", ""),
            "started at": manifest.get("started_at", ""),
            "finished at": manifest.get("finished_at", ""),
            "complete": manifest.get("complete", ""),
            "git revision": json.dumps(manifest.get("git_revision", "")),
            "host": json.dumps(manifest.get("host", "")),
            "seed": exp.get("seed", ""),
        },
        "versions": manifest.get("versions") or {},
        "components": [
            {k: c.get(k) for k in ("name", "kind", "pid", "container", "port", "restarts")}
            for c in stack.get("components") or []
        ],
        "experiment_json": json.dumps(exp, indent=2, sort_keys=False, default=str),
    }


def _failed_check_rows(summary: dict[str, Any]) -> set[str]:
    """The key-number labels of the checks this run failed: their cards are highlighted."""
    results = summary.get("checks") or {}
    return {
        c.report_row
        for name, c in LOADED_CHECKS.items()
        if c.report_row and (results.get(name) or {}).get("ok") is False
    }


def clause_counts(clauses: list[dict[str, Any]]) -> dict[str, int] | None:
    """How many hypothesis clauses held, broke, or could not be judged (None: no clauses)."""
    if not clauses:
        return None
    statuses = [c.get("status") or ("pass" if c.get("ok") else "fail") for c in clauses]
    return {k: statuses.count(k) for k in ("pass", "fail", "inconclusive")}


def _na_rows(summary: dict[str, Any]) -> set[str]:
    """The key-number labels of the checks that do not apply to this backend: shown "n/a"."""
    na = summary.get("na_checks") or {}
    rows = {c.report_row for name, c in LOADED_CHECKS.items() if c.report_row and name in na}
    if summary.get("sold") is None and "sold" in summary:
        rows.add("sold / stock")
    return rows


def render_report(run: Run, summary: dict[str, Any]) -> str:
    template = _TEMPLATES.get_template("report.html.j2")
    recovery = summary.get("recovery") or []
    return template.render(
        v=make_cell(summary),
        s=summary,
        run_id=summary.get("run_id") or run.run_id,
        manifest=_manifest_view(run.manifest),
        key_numbers=KEY_NUMBERS,
        alert_labels=_failed_check_rows(summary),
        na_labels=_na_rows(summary),
        clause_counts=clause_counts(summary.get("hypothesis") or []),
        timing_inconclusive=any(
            c.get("class") == "timing" and c.get("status") == "inconclusive"
            for c in summary.get("hypothesis") or []
        ),
        latency_sets=[(label, key) for label, key in LATENCY_SETS if key in summary],
        percentiles=list(PERCENTILE_KEYS),
        codes=sorted((summary.get("codes") or {}).items(), key=lambda kv: -int(kv[1] or 0)),
        checks=summary.get("checks") or {},
        check_docs={name: c.description for name, c in LOADED_CHECKS.items()},
        anomalies=_anomalies(run, summary),
        evidence_columns=["source", *EVIDENCE_COLUMNS],
        recovery=recovery,
        recovery_columns=_table_columns(recovery),
        reconciliation=summary.get("reconciliation") or {},
        fairness=summary.get("fairness") or {},
        figures=_figures(run, summary),
        generator_overloaded=(summary.get("generator") or {}).get("healthy") is False,
        exit_code=verdict_exit_code(str(summary.get("verdict"))),
        isolation_line=describe_isolation(summary.get("isolation")),
        host_speed_line=host_speed_text(summary.get("host_speed")),
        capacity_line=capacity_headline(summary),
    )


def write_report(run_dir: Path | str) -> Path:
    """Write `<run_dir>/report.html` (atomically) and return its path."""
    run_dir = Path(run_dir)
    summary = ensure_summary(run_dir)
    # The orchestrator writes the report before it flips `complete`, so do not require it here.
    run = load_run(run_dir, require_complete=False)
    return write_text_atomic(run_dir / REPORT, render_report(run, summary))


# --- matrix report ------------------------------------------------------------------------------


def load_matrix(matrix_dir: Path) -> list[dict[str, Any]]:
    """Cells of matrix.json: either a bare list or {"cells": [...]} (what flashlab.lab.matrix writes)."""
    path = matrix_dir / MATRIX_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RunDirError(f"{matrix_dir}: missing {MATRIX_JSON}") from exc
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg})") from exc
    cells = data.get("cells") if isinstance(data, dict) else data
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise RunDirError(f"{path}: cells: expected a list of objects")
    for i, cell in enumerate(cells):
        missing = [k for k in ("strategy", "fault", "durability", "verdict") if k not in cell]
        if missing:
            raise RunDirError(f"{path}: cells.{i}: missing {', '.join(missing)}")
    return cells


def is_unexpected(cell: dict[str, Any]) -> bool:
    """An error, or a verdict other than the expected one ("any" accepts both)."""
    if "unexpected" in cell:
        return bool(cell["unexpected"])
    return verdict_unexpected(cell["verdict"], cell.get("expected", "any"))


def _ordered(cells: list[dict[str, Any]], key: str) -> list[str]:
    return list(dict.fromkeys(str(c[key]) for c in cells))


def _matrix_tables(cells: list[dict[str, Any]], matrix_dir: Path) -> list[dict[str, Any]]:
    """One grid (strategy rows x fault columns) per durability mode."""
    strategies, faults = _ordered(cells, "strategy"), _ordered(cells, "fault")
    tables = []
    for durability in _ordered(cells, "durability"):
        grid: dict[tuple[str, str], dict[str, Any]] = {}
        for index, cell in enumerate(cells):
            if str(cell["durability"]) == durability:
                run_dir = cell.get("run_dir") or ""
                # A run's report.html, or a trial set's trials.html (matrix --repeat).
                pages = [p for p in (REPORT, TRIALS_HTML) if (matrix_dir / run_dir / p).exists()]
                grid[(str(cell["strategy"]), str(cell["fault"]))] = {
                    "index": index,
                    "cell": cell,
                    "unexpected": is_unexpected(cell),
                    "href": f"{run_dir}/{pages[0]}" if run_dir and pages else None,
                }
        tables.append({"durability": durability, "grid": grid})
    return [{"strategies": strategies, "faults": faults, **t} for t in tables]


def render_matrix(cells: list[dict[str, Any]], matrix_dir: Path) -> str:
    template = _TEMPLATES.get_template("matrix.html.j2")
    counts = {
        "cells": len(cells),
        "pass": sum(c["verdict"] == "pass" for c in cells),
        "fail": sum(c["verdict"] == "fail" for c in cells),
        "inconclusive": sum(c["verdict"] == "inconclusive" for c in cells),
        "unexpected": sum(is_unexpected(c) for c in cells),
    }
    return template.render(
        v=make_cell({"cells": cells}),
        title=matrix_dir.name,
        tables=_matrix_tables(cells, matrix_dir),
        counts=counts,
    )


def write_matrix_report(matrix_dir: Path | str) -> Path:
    """Write `<matrix_dir>/matrix.html` from its matrix.json and return its path."""
    matrix_dir = Path(matrix_dir)
    cells = load_matrix(matrix_dir)
    return write_text_atomic(matrix_dir / MATRIX_HTML, render_matrix(cells, matrix_dir))


# --- trial-set report ---------------------------------------------------------------------------

# Metrics drawn as per-trial strips in trials.html and compare.html (names from trials.KEY_METRICS).
STRIP_METRICS = ("p99", "throughput", "sellout")


def strip_panels(groups: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, list[plots.Strip]]]:
    """Per strip metric, one Strip per group (label, trials.json-like `metrics`): for the plots."""
    panels = []
    for name in STRIP_METRICS:
        found = [(label, metrics[name]) for label, metrics in groups if name in metrics]
        strips = [
            plots.Strip(label, m["values"], m.get("median"), m.get("ci_low"), m.get("ci_high"))
            for label, m in found
            if any(v is not None for v in m.get("values") or [])
        ]
        if strips:
            m = found[0][1]
            unit = KIND_SUFFIX.get(kind_of(m["path"]), "").strip()
            panels.append(
                (f"{m.get('label', name)} ({unit})" if unit else m.get("label", name), strips)
            )
    return panels


def render_trials(result: dict[str, Any], set_dir: Path) -> str:
    panels = strip_panels([("trials", result.get("metrics") or {})])
    reports = {
        t["name"] for t in result.get("trials") or [] if (set_dir / t["name"] / REPORT).exists()
    }
    return _TEMPLATES.get_template("trials.html.j2").render(
        t=result,
        v=make_cell(result),
        exit_code=verdict_exit_code(str(result.get("verdict"))),
        figure=plots.data_uri(plots.interval_strips(panels)) if panels else None,
        reports=reports,
    )


def write_trials_report(set_dir: Path | str, result: dict[str, Any]) -> Path:
    """Write `<set_dir>/trials.html` from the set's trials.json content and return its path."""
    set_dir = Path(set_dir)
    return write_text_atomic(set_dir / TRIALS_HTML, render_trials(result, set_dir))


# --- comparison page ----------------------------------------------------------------------------


def render_comparison(comparison: Any) -> str:
    """compare.html for a flashlab.analysis.compare.Comparison."""
    data = comparison.to_dict()
    groups = [
        (f"A {comparison.a.name}", metric_intervals(comparison.a.trials)),
        (f"B {comparison.b.name}", metric_intervals(comparison.b.trials)),
    ]
    panels = strip_panels(groups)
    return _TEMPLATES.get_template("compare.html.j2").render(
        c=data,
        v=make_cell(data),
        figure=plots.data_uri(plots.interval_strips(panels)) if panels else None,
    )


def write_comparison_report(comparison: Any, path: Path | str) -> Path:
    """Write the comparison's HTML page at `path` (atomically) and return it."""
    return write_text_atomic(Path(path), render_comparison(comparison))


# --- sweep page ---------------------------------------------------------------------------------


def render_sweep(manifest: dict[str, Any], frame: Any) -> str:
    """sweep.html: the grid (one row per cell) and a plot per measured metric vs the swept value(s)."""
    paths = [s["path"] for s in manifest.get("sets") or []]
    metrics = plotted_metrics(frame)
    figures = []
    for m in metrics:
        unit = KIND_SUFFIX.get(kind_of(m.path), "").strip()
        title = f"{m.label} ({unit})" if unit and unit != "%" else m.label
        figures.append((m.label, plots.data_uri(plots.sweep_metric(frame, paths, m.name, title))))
    kinds = {m.name: kind_of(m.path) for m in metrics}
    columns = ["cell", *paths, "verdict", "n", *kinds]

    def text(column: str, value: Any) -> str:
        if column not in kinds:
            return _cell_text(value)
        missing = value is None or value != value  # NaN != NaN: not measured
        return fmt(None if missing else float(value), kinds[column])[0]

    rows = [
        [text(c, v) for c, v in zip(columns, r, strict=True)]
        for r in frame[columns].itertuples(index=False)
    ]
    exp = manifest.get("experiment") or {}
    return _TEMPLATES.get_template("sweep.html.j2").render(
        s=manifest,
        experiment=exp.get("name"),
        strategy=(exp.get("product") or {}).get("strategy"),
        columns=columns,
        rows=rows,
        figures=figures,
    )


def write_sweep_report(sweep_dir: Path | str, manifest: dict[str, Any], frame: Any) -> Path:
    """Write `<sweep_dir>/sweep.html` from the sweep's manifest and frame and return its path."""
    return write_text_atomic(Path(sweep_dir) / SWEEP_HTML, render_sweep(manifest, frame))
