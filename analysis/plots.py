"""Plots of runs: latency CDFs, throughput/answers/stock timelines with fault windows, conflict rate, fairness.

Every function takes loaded runs (flashlab.core.rundir.Run) or summaries and returns a matplotlib
`Figure` built with the object API on the Agg canvas: no pyplot state, no display needed, safe in
threads and in headless CI. `data_uri(fig)` turns a figure into an inline base64 PNG for HTML
reports; in a notebook (after `%matplotlib inline`) a returned figure displays itself.
Binning for time plots is adaptive (about MAX_BINS bins over the load), because a flash sale is
often over in two seconds and whole-second bins would hide everything.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flashlab.analysis.stats import NS_PER_S
from flashlab.analysis.stats import code_labels
from flashlab.analysis.stats import load_window
from flashlab.analysis.stats import outcome_flags
from flashlab.analysis.stats import response_ms
from flashlab.analysis.stats import service_ms
from flashlab.core.rundir import Run

MAX_BINS = 80
NICE_BINS_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
CDF_POINTS = 2_000  # enough for a smooth curve; keeps the PNG independent of run size
DPI = 100
# One colour per answer code, stable across plots and reports (unknown codes cycle the rest).
CODE_COLOURS = {
    "ok": "#2e7d32",
    "busy": "#f9a825",
    "sold_out": "#90a4ae",
    "already_purchased": "#8e24aa",
    "backend_unavailable": "#c62828",
    "no_answer": "#212121",
}
OTHER_COLOURS = ("#1565c0", "#6d4c41", "#00838f", "#d84315", "#5e35b1", "#827717")
FAULT_COLOUR = "#e53935"


# --- helpers ------------------------------------------------------------------------------------


def new_figure(
    width: float = 10.0, height: float = 3.6, rows: int = 1
) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=rows > 1, squeeze=False)[:, 0]
    return fig, list(axes)


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def data_uri(fig: Figure) -> str:
    """`data:image/png;base64,...` for an <img src>; no file, no network."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig)).decode("ascii")


def bin_width_s(span_s: float) -> float:
    """The smallest 'nice' bin width giving at most MAX_BINS bins over `span_s`."""
    for width in NICE_BINS_S:
        if span_s / width <= MAX_BINS:
            return width
    return NICE_BINS_S[-1]


def _run_label(run: Run) -> str:
    exp = run.manifest.get("experiment") or {}
    strategy = (exp.get("product") or {}).get("strategy") or run.truth.strategy
    return f"{exp.get('name', run.run_id)} ({strategy})"


def code_colour(code: str, order: int) -> str:
    return CODE_COLOURS.get(code, OTHER_COLOURS[order % len(OTHER_COLOURS)])


# --- binned time series -------------------------------------------------------------------------


def binned(run: Run, width_s: float | None = None) -> pd.DataFrame:
    """Per bin of completion time since load start: attempts, ok, busy, available, one column per code.

    Index `t_s` is the bin's left edge in seconds; the frame carries the width in `attrs`.
    """
    h = run.history
    start, end = load_window(run)
    rel_s = (h["complete_ns"] - start) / NS_PER_S
    span = max(float(rel_s.max()) if len(h) else 0.0, (end - start) / NS_PER_S, 1e-3)
    width = width_s or bin_width_s(span)
    bins = np.floor(rel_s.clip(lower=0) / width).astype("int64")
    index = pd.RangeIndex(int(bins.max()) + 1 if len(h) else 1)
    flags = outcome_flags(h)
    frame = pd.DataFrame(index=index)
    frame["attempts"] = bins.value_counts().reindex(index, fill_value=0)
    for col in ("ok", "busy", "available"):
        frame[col] = flags[col].groupby(bins).sum().reindex(index, fill_value=0)
    by_code = pd.crosstab(bins, code_labels(h)).reindex(index, fill_value=0) if len(h) else None
    if by_code is not None:
        for code in by_code.columns:
            frame[f"code:{code}"] = by_code[code]
    frame.index = pd.Index(index.to_numpy() * width, name="t_s")
    frame.attrs["width_s"] = width
    return frame


def truth_stock(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(t_s, stock) steps from the truth's order log: exact, not binned; empty when the truth has
    no timed order log (a target whose file reads none)."""
    if not (run.truth.has("orders") and run.truth.has("ts_ms")):
        return np.array([]), np.array([])
    start, _ = load_window(run)
    timed = [o.ts_ms for o in run.truth.orders if o.ts_ms is not None]
    ts_ns = np.sort(np.array(timed, dtype="int64")) * 1_000_000
    t = np.concatenate([[0.0], (ts_ns - start) / NS_PER_S])
    stock = run.truth.stock_initial - np.arange(len(t))
    return t, stock


def client_stock(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(t_s, lowest `remaining` any answer had reported by then): what shoppers could see."""
    h = run.history
    seen = h.loc[h["remaining"].notna(), ["complete_ns", "remaining"]].sort_values("complete_ns")
    start, _ = load_window(run)
    t = (seen["complete_ns"].to_numpy() - start) / NS_PER_S
    return t, np.minimum.accumulate(seen["remaining"].to_numpy(dtype="float64"))


ABORT_COLOUR = "#6a1b9a"


def mark_abort(ax: Axes, run: Run) -> None:
    """A dashed vertical line where a guard or Ctrl-C aborted the run (manifest["aborted"])."""
    aborted = run.manifest.get("aborted")
    if not aborted or aborted.get("t_s") is None:
        return
    t = float(aborted["t_s"])
    ax.axvline(t, color=ABORT_COLOUR, lw=1.2, ls="--")
    ax.annotate(
        "aborted" if aborted.get("by") != "guard" else f"guard: {aborted.get('guard')}",
        xy=(t, 0.0),
        xycoords=("data", "axes fraction"),
        xytext=(3, 3),
        textcoords="offset points",
        fontsize=8,
        color=ABORT_COLOUR,
    )


def shade_faults(ax: Axes, run: Run, label: bool = True) -> None:
    """Shade each fault window [inject, recover] (to load end if it never recovered) and name it;
    mark the moment the run was aborted, if it was."""
    mark_abort(ax, run)
    if run.faults.empty:
        return
    start, end = load_window(run)
    for _, row in run.faults.iterrows():
        t0 = (int(row["inject_ns"]) - start) / NS_PER_S
        recover = row["recover_ns"]
        t1 = ((end if pd.isna(recover) else int(recover)) - start) / NS_PER_S
        # An instant fault (kill) still gets a visible sliver.
        ax.axvspan(t0, max(t1, t0 + 0.01), color=FAULT_COLOUR, alpha=0.15, lw=0)
        ax.axvline(t0, color=FAULT_COLOUR, lw=0.8, alpha=0.7)
        if label:
            ax.annotate(
                str(row["fault"]),
                xy=(t0, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -2),
                textcoords="offset points",
                va="top",
                fontsize=8,
                color=FAULT_COLOUR,
            )


# --- single-run plots ---------------------------------------------------------------------------


def _cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.sort(values[np.isfinite(values)])
    if values.size == 0:
        return values, values
    q = np.linspace(0.0, 1.0, min(CDF_POINTS, values.size))
    return np.quantile(values, q), q


def _plot_cdf(ax: Axes, values_ms: np.ndarray, label: str, **style: Any) -> None:
    x, y = _cdf(np.clip(values_ms, 1e-3, None))  # log axis: clamp sub-microsecond to 1 µs
    if x.size:
        ax.plot(x, y, label=label, **style)


def _style_cdf(ax: Axes, title: str) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of attempts ≤ x")
    ax.set_ylim(0, 1.01)
    marks = (0.5, 0.95, 0.99)
    for p in marks:
        ax.axhline(p, color="#9e9e9e", lw=0.6, ls=":")
    right = ax.secondary_yaxis("right")
    right.set_yticks(marks, labels=[f"p{round(p * 100)}" for p in marks], fontsize=7)
    ax.grid(True, which="both", alpha=0.25)
    ax.set_title(title, loc="left", fontsize=11)
    ax.legend(loc="lower right", fontsize=8)


def latency_cdf(run: Run) -> Figure:
    """Response time (from intended send time) vs service time (from actual send) as CDFs, log x.

    The gap between the curves is queueing the client did before sending: coordinated omission.
    """
    fig, (ax,) = new_figure(height=3.8)
    h = run.history
    _plot_cdf(ax, response_ms(h).to_numpy(), "response time (complete − intended)", color="#c62828")
    _plot_cdf(ax, service_ms(h).to_numpy(), "service time (complete − invoke)", color="#1565c0")
    _style_cdf(ax, "Latency CDF")
    return fig


def timeline(run: Run) -> Figure:
    """Three panels over the load: throughput, answers by code (stacked), stock remaining."""
    frame = binned(run)
    width = frame.attrs["width_s"]
    fig, (ax_tp, ax_codes, ax_stock) = new_figure(height=2.6, rows=3)
    t = frame.index.to_numpy()
    ax_tp.step(t, frame["attempts"] / width, where="post", label="attempts/s", color="#1565c0")
    ax_tp.step(t, frame["ok"] / width, where="post", label="purchases/s", color="#2e7d32")
    ax_tp.set_ylabel("per second")
    ax_tp.set_title(f"Throughput ({width:g} s bins)", loc="left", fontsize=11)
    codes = [c for c in frame.columns if c.startswith("code:")]
    codes.sort(key=lambda c: -int(frame[c].sum()))
    ax_codes.stackplot(
        t,
        [frame[c] / width for c in codes],
        labels=[c.removeprefix("code:") for c in codes],
        colors=[code_colour(c.removeprefix("code:"), i) for i, c in enumerate(codes)],
        step="post",
    )
    ax_codes.set_ylabel("answers/s")
    ax_codes.set_title("Answers by code", loc="left", fontsize=11)
    ts, stock = truth_stock(run)
    if ts.size:
        label = f"{run.truth.source} truth (order log)"
        ax_stock.step(ts, stock, where="post", label=label, color="#212121")
    tc, seen = client_stock(run)
    if tc.size:
        ax_stock.step(
            tc,
            seen,
            where="post",
            label="lowest `remaining` seen by clients",
            color="#ef6c00",
            ls="--",
        )
    ax_stock.axhline(0, color="#9e9e9e", lw=0.6)
    ax_stock.set_ylabel("units")
    ax_stock.set_xlabel("seconds since load start")
    ax_stock.set_title("Stock remaining", loc="left", fontsize=11)
    for ax in (ax_tp, ax_codes, ax_stock):
        shade_faults(ax, run)
        ax.grid(True, alpha=0.25)
        ax.legend(loc="upper right", fontsize=8)
        ax.set_xlim(left=0)
    return fig


def conflict_rate(run: Run) -> Figure:
    """409 busy answers / attempts per bin, with availability for context."""
    frame = binned(run)
    fig, (ax,) = new_figure(height=3.0)
    attempts = frame["attempts"].where(frame["attempts"] > 0)
    t = frame.index.to_numpy()
    ax.step(
        t,
        100 * frame["busy"] / attempts,
        where="post",
        color="#f9a825",
        label="conflict rate (409 busy)",
    )
    ax.step(
        t,
        100 * frame["available"] / attempts,
        where="post",
        color="#1565c0",
        alpha=0.6,
        label="availability (no 5xx / transport error)",
    )
    shade_faults(ax, run)
    ax.set_ylim(-2, 102)
    ax.set_ylabel("% of attempts")
    ax.set_xlabel("seconds since load start")
    ax.set_title(
        f"Conflict rate over time ({frame.attrs['width_s']:g} s bins)", loc="left", fontsize=11
    )
    ax.grid(True, alpha=0.25)
    ax.legend(loc="center right", fontsize=8)
    ax.set_xlim(left=0)
    return fig


def fairness_deciles(summary: dict[str, Any]) -> Figure:
    """Win rate per arrival decile (1 = earliest tenth of shoppers)."""
    deciles = (summary.get("fairness") or {}).get("deciles") or []
    fig, (ax,) = new_figure(width=5.5, height=3.2)
    x = [d["decile"] for d in deciles]
    ax.bar(x, [100 * d["win_rate"] for d in deciles], color="#5e35b1")
    ax.set_xticks(x)
    ax.set_xlabel("arrival decile (1 = first to arrive)")
    ax.set_ylabel("% who got a unit")
    ax.set_title("Fairness: who won, by arrival order", loc="left", fontsize=11)
    ax.grid(True, axis="y", alpha=0.25)
    return fig


# --- comparisons across runs (notebooks) --------------------------------------------------------


def compare_cdfs(
    runs: Sequence[Run], labels: Sequence[str] | None = None, service: bool = False
) -> Figure:
    """Response-time CDFs of several runs on one log axis (dashed: service time, when `service`)."""
    fig, (ax,) = new_figure(height=4.0)
    labels = list(labels or [_run_label(r) for r in runs])
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        colour = OTHER_COLOURS[i % len(OTHER_COLOURS)]
        _plot_cdf(ax, response_ms(run.history).to_numpy(), f"{label} response", color=colour)
        if service:
            _plot_cdf(
                ax, service_ms(run.history).to_numpy(), f"{label} service", color=colour, ls="--"
            )
    _style_cdf(ax, "Latency CDFs")
    return fig


def metric_bars(
    summaries: Sequence[dict[str, Any]],
    labels: Sequence[str],
    keys: Sequence[str],
    title: str,
    ylabel: str = "",
    scale: float = 1.0,
) -> Figure:
    """Grouped bars of summary values (dotted keys, e.g. 'latency_ms.p99') per run."""
    fig, (ax,) = new_figure(height=3.4)
    width = 0.8 / max(len(keys), 1)
    x = np.arange(len(summaries))
    for i, key in enumerate(keys):
        values = [summary_value(s, key) for s in summaries]
        heights = [np.nan if v is None else scale * float(v) for v in values]
        ax.bar(
            x + i * width - 0.4 + width / 2,
            heights,
            width,
            label=key,
            color=OTHER_COLOURS[i % len(OTHER_COLOURS)],
        )
    ax.set_xticks(x, list(labels), rotation=15, ha="right", fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(True, axis="y", alpha=0.25)
    if len(keys) > 1:
        ax.legend(fontsize=8)
    return fig


def sold_vs_stock(summaries: Sequence[dict[str, Any]], labels: Sequence[str]) -> Figure:
    """Units sold per run against the stock line: a bar above the line is oversell."""
    fig, (ax,) = new_figure(height=3.4)
    x = np.arange(len(summaries))
    sold = [s.get("sold") or 0 for s in summaries]
    stock = [s.get("stock_initial") or 0 for s in summaries]
    colours = ["#c62828" if (s.get("oversell") or 0) > 0 else "#2e7d32" for s in summaries]
    ax.bar(x, sold, color=colours, label="sold (Redis orders)")
    ax.scatter(x, stock, marker="_", s=2000, color="#212121", label="stock", zorder=3)
    for xi, s in zip(x, summaries, strict=True):
        if s.get("oversell"):
            ax.annotate(
                f"+{s['oversell']}",
                (xi, s.get("sold") or 0),
                ha="center",
                va="bottom",
                color="#c62828",
                fontsize=9,
            )
    ax.set_xticks(x, list(labels), rotation=15, ha="right", fontsize=9)
    ax.set_ylabel("units")
    ax.set_title("Sold vs stock (red = oversold)", loc="left", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", alpha=0.25)
    return fig


def queueing_delay(run: Run) -> Figure:
    """invoke - intended per attempt over time: how late the client sent, hidden if you time from invoke."""
    h = run.history
    start, _ = load_window(run)
    fig, (ax,) = new_figure(height=3.0)
    t = (h["intended_ns"] - start) / NS_PER_S
    delay_ms = (h["invoke_ns"] - h["intended_ns"]) / 1e6
    ax.scatter(t, delay_ms, s=2, alpha=0.3, color="#6d4c41", rasterized=True)
    shade_faults(ax, run)
    ax.set_xlabel("intended send time (s since load start)")
    ax.set_ylabel("send delay (ms)")
    ax.set_title("Client send delay (intended → invoke)", loc="left", fontsize=11)
    ax.grid(True, alpha=0.25)
    return fig


# --- repeated trials: values, median and confidence interval ------------------------------------


@dataclass(frozen=True)
class Strip:
    """One group's per-trial values of a metric, their median and its interval (None: no CI)."""

    label: str
    values: Sequence[float | None]
    median: float | None
    low: float | None
    high: float | None


def interval_strips(panels: Sequence[tuple[str, Sequence[Strip]]]) -> Figure:
    """One panel per metric: each trial as a dot, the median as a bar, the CI as a whisker."""
    height = 1.2 + 0.45 * max(len(s) for _, s in panels)
    fig = Figure(figsize=(10.0, height * len(panels)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(len(panels), 1, squeeze=False)[:, 0])  # own x axis: own units
    for ax, (title, strips) in zip(axes, panels, strict=True):
        for row, strip in enumerate(strips):
            colour = OTHER_COLOURS[row % len(OTHER_COLOURS)]
            xs = [float(v) for v in strip.values if v is not None]
            ax.scatter(xs, [row] * len(xs), s=22, color=colour, alpha=0.7, zorder=3)
            if strip.low is not None and strip.high is not None:
                ax.plot([strip.low, strip.high], [row, row], color=colour, lw=3, alpha=0.35)
            if strip.median is not None:
                ax.scatter([strip.median], [row], marker="|", s=400, color=colour, zorder=4)
        ax.set_yticks(range(len(strips)), [s.label for s in strips], fontsize=9)
        ax.set_ylim(-0.7, len(strips) - 0.3)
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(True, axis="x", alpha=0.25)
    return fig


def summary_value(summary: dict[str, Any], dotted: str) -> Any:
    """summary['a']['b'] for 'a.b' (None when any part is missing)."""
    node: Any = summary
    for part in dotted.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def sweep_metric(frame: pd.DataFrame, paths: Sequence[str], metric: str, title: str) -> Figure:
    """One metric against the first swept path; one line per combination of the other paths,
    with the CI of the median as error bars when the cells were repeated."""
    fig, (ax,) = new_figure(width=8.0, height=3.2)
    x_path, others = paths[0], list(paths[1:])
    xs_all = list(dict.fromkeys(frame[x_path].tolist()))
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs_all)
    position = {x: (x if numeric else i) for i, x in enumerate(xs_all)}
    groups = frame.groupby(others, sort=False, dropna=False) if others else [((), frame)]
    for order, (key, group) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{p}={v}" for p, v in zip(others, key, strict=True)) or None
        xs = [position[x] for x in group[x_path]]
        ys = group[metric].to_numpy(dtype=float)
        low = group.get(f"{metric}_ci_low")
        high = group.get(f"{metric}_ci_high")
        colour = OTHER_COLOURS[order % len(OTHER_COLOURS)]
        if low is not None and high is not None and low.notna().any():
            err = np.vstack([ys - low.to_numpy(dtype=float), high.to_numpy(dtype=float) - ys])
            ax.errorbar(
                xs, ys, yerr=np.nan_to_num(err), color=colour, marker="o", capsize=4, label=label
            )
        else:
            ax.plot(xs, ys, color=colour, marker="o", label=label)
    if not numeric:
        ax.set_xticks(range(len(xs_all)), [str(x) for x in xs_all])
    ax.set_xlabel(x_path)
    ax.set_title(title, loc="left", fontsize=10)
    ax.grid(True, alpha=0.25)
    if others:
        ax.legend(fontsize=8)
    return fig
