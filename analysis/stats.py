"""Run statistics from the history alone: outcome classes, rates, latency percentiles, time series, sell-out, fairness.

Definitions (every rate's denominator is `attempts` = history rows, one per purchase attempt):
- success_rate       = attempts with type `ok` / attempts.
- conflict_rate      = attempts answered 409 `busy` (lost the race) / attempts.
- expected answers   = `sold_out`, `already_purchased`, `busy`: correct business answers, not errors.
- error_rate         = attempts that are neither `ok` nor an expected answer / attempts. This counts
                       503s, gateway errors, transport failures and timeouts (including the
                       indeterminate `info` ops), 5xx bugs and unexpected 4xx (a client/contract bug).
- indeterminate_rate = `info` attempts / attempts.
- available          = an HTTP answer arrived (status != 0) and it is not a 5xx. availability =
                       available attempts / attempts. Sold-out and busy answers count as available.
- server_error_rate  = attempts answered 5xx other than 502/503/504 / attempts (a 500 is a bug;
                       503 is the contract's "backend unavailable", 502/504 come from nginx).
- unknown_rate       = attempts whose answer no rule of a target file matched / attempts.
Latency: response time = complete - intended (no coordinated omission), service time =
complete - invoke, in ms; percentiles use numpy's default (linear interpolation).
Time series bin ops by their *completion* time, in whole seconds since the load started.
Sell-out (`sellout_s`) is measured from Redis truth: seconds from load start to the server
timestamp of the order that took the last unit (the `stock_initial`-th order); None if the
stock never ran out, or the truth has no timed order log (a target whose file reads none). `sellout_first_answer_s` is the client view: the first `sold_out` answer.
Fairness: a shopper *won* if Redis truth holds an order for their user id. rank_correlation is
Spearman's rho between arrival rank (`shopper`) and winning (1/0): strongly negative means
first come, first served; near 0 means arrival order did not matter. FCFS inversions: pairs
where a shopper who arrived later won and one who arrived earlier, at least as patient (max_attempts
of their profile, from manifest.experiment.scenario.profiles; the same profile when not
recorded), did not; fcfs_inversion_rate = inversions / comparable (winner, loser) pairs
(0 = first come first served, ~0.5 = arrival order did not matter). `profiles`: each profile's
share of the shoppers and of the units (bots vs humans); deciles carry the p50/p90 time from a
buyer's arrival (first intended send) to their first 200.
Load-generator health (`generator`) is the one statistic not from the history: the engine's own
event-loop lag and CPU measurements, read from manifest["engine"]["generator"] (see
flashlab.simulator.loopmon). A starved generator inflates both response and service times.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from flashlab.analysis.summary_schema import PERCENTILES
from flashlab.core.rundir import Run

EXPECTED_CODES = frozenset({"sold_out", "already_purchased", "busy"})
GATEWAY_STATUSES = frozenset({502, 503, 504})
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


# --- outcome classes ---------------------------------------------------------------------------


def outcome_flags(history: pd.DataFrame) -> pd.DataFrame:
    """Boolean outcome columns, one row per attempt (same index as `history`)."""
    status = history["status"].astype("int64")
    code = history["code"].astype("object")
    is_ok = history["type"].eq("ok")
    expected = code.isin(EXPECTED_CODES) & ~is_ok
    answered = status.ne(0)
    return pd.DataFrame(
        {
            "ok": is_ok,
            "busy": code.eq("busy"),
            "expected": expected,
            "info": history["type"].eq("info"),
            "error": ~is_ok & ~expected,
            "available": answered & status.lt(500),
            "server_error": status.ge(500) & ~status.isin(GATEWAY_STATUSES),
        },
        index=history.index,
    )


def code_labels(history: pd.DataFrame) -> pd.Series:
    """The body `code`, or `http_<status>` / `no_answer` when there was none."""
    status = history["status"].astype("int64")
    fallback = np.where(status.eq(0), "no_answer", "http_" + status.astype(str))
    return history["code"].astype("object").where(history["code"].notna(), fallback)


def codes(history: pd.DataFrame) -> dict[str, int]:
    counts = code_labels(history).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def _rate(count: int | float, total: int) -> float | None:
    return float(count) / total if total else None


def rates(history: pd.DataFrame) -> dict[str, float | None]:
    flags = outcome_flags(history)
    n = len(history)
    return {
        "success_rate": _rate(flags["ok"].sum(), n),
        "conflict_rate": _rate(flags["busy"].sum(), n),
        "error_rate": _rate(flags["error"].sum(), n),
        "indeterminate_rate": _rate(flags["info"].sum(), n),
        "availability": _rate(flags["available"].sum(), n),
        "server_error_rate": _rate(flags["server_error"].sum(), n),
        # A target's answers its file's rules did not recognise (outcome `unknown`).
        "unknown_rate": _rate(history["code"].eq("unknown").sum(), n),
    }


# --- latency -----------------------------------------------------------------------------------


def percentiles(values_ms: np.ndarray | pd.Series) -> dict[str, float | None]:
    """p50/p90/p95/p99/p999/max of `values_ms` (numpy linear interpolation); all None when empty."""
    arr = np.asarray(values_ms, dtype="float64")
    if arr.size == 0:
        return {**dict.fromkeys(PERCENTILES), "max": None}
    points = np.percentile(arr, list(PERCENTILES.values()))
    out: dict[str, float | None] = {k: float(v) for k, v in zip(PERCENTILES, points, strict=True)}
    out["max"] = float(arr.max())
    return out


def response_ms(history: pd.DataFrame) -> pd.Series:
    return (history["complete_ns"] - history["intended_ns"]) / NS_PER_MS


def service_ms(history: pd.DataFrame) -> pd.Series:
    return (history["complete_ns"] - history["invoke_ns"]) / NS_PER_MS


def latency(history: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    ok = history["type"].eq("ok")
    resp, serv = response_ms(history), service_ms(history)
    return {
        "latency_ms": percentiles(resp),
        "service_latency_ms": percentiles(serv),
        "latency_ok_ms": percentiles(resp[ok]),
        "service_latency_ok_ms": percentiles(serv[ok]),
    }


# --- load window -------------------------------------------------------------------------------


def load_window(run: Run) -> tuple[int, int]:
    """(start_ns, end_ns) of the load: the manifest's, else the history's own extent."""
    h = run.history
    start = run.manifest.get("load_start_ns")
    end = run.manifest.get("load_end_ns")
    if start is None:
        start = int(h["intended_ns"].min()) if len(h) else 0
    if end is None:
        end = int(h["complete_ns"].max()) if len(h) else int(start)
    return int(start), int(end)


def duration_s(run: Run) -> float | None:
    start, end = load_window(run)
    return (end - start) / NS_PER_S if end > start else None


def throughput_rps(run: Run) -> float | None:
    duration = duration_s(run)
    return len(run.history) / duration if duration else None


# --- time series -------------------------------------------------------------------------------


def _truth_orders(run: Run) -> pd.DataFrame:
    """The truth's orders with server times; empty when the truth has no timed order log."""
    timed = run.truth.has("orders") and run.truth.has("ts_ms")
    orders = [o for o in run.truth.orders if o.ts_ms is not None] if timed else []
    return pd.DataFrame(
        {
            "order_id": [o.order_id for o in orders],
            "user_id": [o.user_id for o in orders],
            "ts_ms": np.array([o.ts_ms for o in orders], dtype="int64"),
        }
    )


def timeseries(run: Run) -> pd.DataFrame:
    """Per second since load start (by completion time): attempts, ok, p99, codes, stock (client and truth)."""
    h = run.history
    start, _ = load_window(run)
    sec = ((h["complete_ns"] - start) // NS_PER_S).clip(lower=0).astype("int64")
    orders = _truth_orders(run)
    order_sec = ((orders["ts_ms"] * NS_PER_MS - start) // NS_PER_S).clip(lower=0).astype("int64")
    last = int(max(sec.max() if len(sec) else 0, order_sec.max() if len(order_sec) else 0))
    index = pd.RangeIndex(last + 1, name="t_s")
    frame = pd.DataFrame(index=index)
    frame["attempts"] = sec.value_counts().reindex(index, fill_value=0)
    frame["ok"] = sec[h["type"].eq("ok")].value_counts().reindex(index, fill_value=0)
    frame["p99_ms"] = response_ms(h).groupby(sec).quantile(0.99).reindex(index)
    by_code = pd.crosstab(sec, code_labels(h)).reindex(index, fill_value=0)
    for code in by_code.columns:
        frame[f"code:{code}"] = by_code[code]
    initial = run.truth.stock_initial
    # Client view: lowest `remaining` any answer reported so far (answers arrive out of order).
    seen = h["remaining"].groupby(sec).min().reindex(index)
    frame["stock_client"] = seen.cummin().ffill().fillna(initial)
    sold = order_sec.value_counts().reindex(index, fill_value=0).cumsum()
    frame["stock_truth"] = initial - sold
    if not (run.truth.has("orders") and run.truth.has("ts_ms")):
        frame["stock_truth"] = np.nan  # no timed order log: the truth's curve is unknown
    return frame


def compact_timeseries(frame: pd.DataFrame) -> dict[str, Any]:
    """The per-second frame as plain lists (JSON-safe; NaN -> None), codes grouped."""

    def col(name: str, digits: int | None = None) -> list[Any]:
        values = frame[name].astype("float64")
        if digits is not None:
            values = values.round(digits)
        return [None if np.isnan(v) else (int(v) if digits is None else float(v)) for v in values]

    return {
        "t_s": [int(t) for t in frame.index],
        "attempts": col("attempts"),
        "ok": col("ok"),
        "p99_ms": col("p99_ms", 3),
        "codes": {c.removeprefix("code:"): col(c) for c in frame.columns if c.startswith("code:")},
        "stock_client": col("stock_client"),
        "stock_truth": col("stock_truth"),
    }


# --- sell-out ----------------------------------------------------------------------------------


def sellout(run: Run) -> dict[str, float | None]:
    """Seconds from load start to the last unit's order (truth) and to the first sold_out answer."""
    start, _ = load_window(run)
    initial = run.truth.stock_initial
    ts = np.sort(_truth_orders(run)["ts_ms"].to_numpy(dtype="int64"))
    truth_s: float | None = None
    if initial == 0:
        truth_s = 0.0
    elif ts.size >= initial:
        truth_s = max(0.0, (int(ts[initial - 1]) * NS_PER_MS - start) / NS_PER_S)
    h = run.history
    sold_out = h.loc[h["code"].eq("sold_out"), "complete_ns"]
    first = (int(sold_out.min()) - start) / NS_PER_S if len(sold_out) else None
    return {"sellout_s": truth_s, "sellout_first_answer_s": first}


# --- fairness ----------------------------------------------------------------------------------


def fcfs_inversions(won: np.ndarray, level: np.ndarray) -> tuple[int, int]:
    """(inversions, comparable pairs) over shoppers in arrival order, in O(n x patience levels).

    A (winner, loser) pair is comparable when the loser was at least as patient (level >= the
    winner's); it is an inversion when the loser arrived earlier. Each patience level of the
    winners is one cumulative count of the losers at least that patient seen so far."""
    inversions = pairs = 0
    lost = ~won
    for lv in np.unique(level[won]):
        patient_losers = lost & (level >= lv)
        before = np.cumsum(patient_losers) - patient_losers  # strictly earlier arrivals
        winners = won & (level == lv)
        inversions += int(before[winners].sum())
        pairs += int(winners.sum()) * int(patient_losers.sum())
    return inversions, pairs


def patience_levels(manifest: dict[str, Any]) -> dict[str, int]:
    """Profile name -> max_attempts, from the experiment the manifest recorded (may be empty)."""
    scenario = (manifest.get("experiment") or {}).get("scenario") or {}
    profiles = scenario.get("profiles") if isinstance(scenario, dict) else None
    return {
        str(p["name"]): int(p["max_attempts"])
        for p in profiles or []
        if isinstance(p, dict) and "name" in p and isinstance(p.get("max_attempts"), int)
    }


def _inversions(run: Run, won: np.ndarray, profiles: pd.Series) -> dict[str, Any]:
    """FCFS inversions; patience = max_attempts when every profile's is recorded, else the same
    profile only (each profile compared within itself)."""
    levels = patience_levels(run.manifest)
    names = profiles.to_numpy(dtype="object")
    if set(names) <= set(levels):
        inv, pairs = fcfs_inversions(won, np.array([levels[p] for p in names], dtype="int64"))
        basis = "max_attempts"
    else:
        inv = pairs = 0
        for name in sorted(set(names)):
            mask = names == name
            i, p = fcfs_inversions(won[mask], np.zeros(int(mask.sum()), dtype="int64"))
            inv, pairs = inv + i, pairs + p
        basis = "same profile"
    return {
        "fcfs_inversions": inv,
        "fcfs_pairs": pairs,
        "fcfs_inversion_rate": inv / pairs if pairs else 0.0,
        "fcfs_patience": basis,
    }


def _profile_shares(won: np.ndarray, profiles: pd.Series) -> dict[str, dict[str, Any]]:
    """Each profile's share of the shoppers against its share of the units (bots vs humans)."""
    frame = pd.DataFrame({"profile": profiles.to_numpy(), "won": won})
    per = frame.groupby("profile", sort=True)["won"].agg(["size", "sum"])
    n, units = len(frame), int(won.sum())
    return {
        str(name): {
            "shoppers": int(row["size"]),
            "units": int(row["sum"]),
            "shopper_share": float(row["size"] / n) if n else None,
            "unit_share": float(row["sum"] / units) if units else None,
        }
        for name, row in per.iterrows()
    }


def _time_to_purchase(h: pd.DataFrame, decile: pd.Series) -> pd.DataFrame:
    """Per arrival decile: p50/p90 seconds from a buyer's arrival to their first 200 answer."""
    arrived = h.groupby("shopper")["intended_ns"].min()
    bought = h[h["type"].eq("ok")].groupby("shopper")["complete_ns"].min()
    wait_s = ((bought - arrived.reindex(bought.index)) / NS_PER_S).rename("wait")
    if wait_s.empty:
        return pd.DataFrame()
    frame = pd.DataFrame({"wait": wait_s, "decile": decile.reindex(wait_s.index)})
    return frame.groupby("decile")["wait"].quantile([0.5, 0.9]).unstack()


def fairness(run: Run) -> dict[str, Any]:
    """Who won by arrival order: Spearman rho, the early half's share of winners, winners and time
    to purchase per decile, FCFS inversions, and each profile's share of the units."""
    h = run.history
    first = h.groupby("shopper", sort=True)[["user_id", "profile"]].first()
    shoppers = first["user_id"]
    n = len(shoppers)
    # Who holds a unit per the truth; without buyers in the truth, who was told they bought one.
    if run.truth.has("orders") and run.truth.has("user_id"):
        winners = {o.user_id for o in run.truth.orders}
    else:
        winners = set(h.loc[h["type"].eq("ok"), "user_id"])
    won = shoppers.isin(winners).to_numpy(dtype="float64")
    rank = np.arange(n, dtype="float64")  # shoppers sorted by arrival rank
    rho: float | None = None
    if n > 1 and 0 < won.sum() < n:
        # Ties in `won` get average ranks (scipy's Spearman does, as the definition asks).
        rho = float(spearmanr(rank, won).statistic)
    total_won = int(won.sum())
    early = int(won[rank < n / 2].sum())
    decile = (rank * 10 // max(n, 1)).astype("int64")
    per = pd.DataFrame({"decile": decile, "won": won}).groupby("decile")["won"].agg(["size", "sum"])
    waits = _time_to_purchase(h, pd.Series(decile, index=shoppers.index))
    deciles = [
        {
            "decile": int(d) + 1,
            "shoppers": int(row["size"]),
            "winners": int(row["sum"]),
            "win_rate": float(row["sum"] / row["size"]),
            "time_to_purchase_p50_s": _opt(waits, d, 0.5),
            "time_to_purchase_p90_s": _opt(waits, d, 0.9),
        }
        for d, row in per.iterrows()
    ]
    return {
        "rank_correlation": rho,
        "early_half_win_share": early / total_won if total_won else None,
        "winners": total_won,
        "deciles": deciles,
        **_inversions(run, won.astype(bool), first["profile"]),
        "profiles": _profile_shares(won.astype(bool), first["profile"]),
    }


def _opt(frame: pd.DataFrame, row: Any, col: float) -> float | None:
    if row not in frame.index or col not in frame.columns or pd.isna(frame.at[row, col]):
        return None
    return float(frame.at[row, col])


# --- load-generator health ---------------------------------------------------------------------

# Thresholds for trusting a run's latencies. The sampler wakes every 20 ms; a healthy uvloop worker
# wakes within a few ms of that. A lag p99 of 50 ms means that for 1% of the run every timestamp the
# worker took could be off by 50 ms or more, the same order as the service times a flash sale sees
# (ms to tens of ms), so p99 latencies would measure the client, not the server.
GENERATOR_LAG_P99_MS_MAX = 50.0
# Half a second frozen in total (stalls are lags > 100 ms): every request in flight during a stall
# gains its length, and at thousands of requests per second that is a large share of a short run.
GENERATOR_STALLED_S_MAX = 0.5
GENERATOR_KEYS = ("lag_ms_p99", "lag_ms_max", "stalled_s", "cpu_pct_max")


def load_generator_health(manifest: dict[str, Any]) -> dict[str, Any]:
    """{lag_ms_p99, lag_ms_max, stalled_s, cpu_pct_max, healthy} from manifest.engine.generator.

    healthy = lag p99 < GENERATOR_LAG_P99_MS_MAX and stalled_s < GENERATOR_STALLED_S_MAX; every
    value is None when the run did not record them (older runs, or no worker reported).
    """
    engine = manifest.get("engine")
    raw = engine.get("generator") if isinstance(engine, dict) else None
    raw = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for key in GENERATOR_KEYS:
        value = raw.get(key)
        out[key] = (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )
    lag, stalled = out["lag_ms_p99"], out["stalled_s"]
    out["healthy"] = (
        None
        if lag is None or stalled is None
        else lag < GENERATOR_LAG_P99_MS_MAX and stalled < GENERATOR_STALLED_S_MAX
    )
    return out


# --- host speed (manifest.host_speed, written by flashlab.lab.hostspeed) ------------------------


def host_spreads(host_speed: dict[str, Any] | None) -> dict[str, float]:
    """Each side's p90/p10 CPU-speed spread over the load; sides without one are left out."""
    return {
        side: float(rec["spread"])
        for side, rec in (host_speed or {}).items()
        if isinstance(rec, dict) and isinstance(rec.get("spread"), int | float)
    }


def worst_host_spread(host_speed: dict[str, Any] | None) -> tuple[str, float] | None:
    """(side, spread) of the least steady side; None when no side measured one."""
    spreads = host_spreads(host_speed)
    if not spreads:
        return None
    side = max(spreads, key=lambda k: spreads[k])
    return side, spreads[side]


def stack_unit_us(host_speed: dict[str, Any] | None) -> float | None:
    """The probe's median unit time beside the stack (its side, or the whole host when unsplit)."""
    rec = (host_speed or {}).get("stack") or (host_speed or {}).get("host") or {}
    value = rec.get("median_us")
    return float(value) if isinstance(value, int | float) else None
