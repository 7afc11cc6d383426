"""Statistics: percentiles against numpy, rate definitions on hand-built histories, time series, sell-out, fairness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flashlab.analysis import stats
from flashlab.core.rundir import HISTORY_SCHEMA
from flashlab.core.rundir import Run
from flashlab.core.rundir import Truth
from flashlab.core.rundir import TruthOrder
from flashlab.core.rundir import load_run
from flashlab.testing.synthetic import T0_NS
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic

MS = 1_000_000


def _op(
    shopper: int, status: int, code: str | None, kind: str = "fail", **extra: Any
) -> dict[str, Any]:
    t = T0_NS + shopper * 10 * MS
    row = {
        "run_id": "r",
        "op_id": f"{shopper}:1",
        "shopper": shopper,
        "user_id": f"u-{shopper}",
        "profile": "p",
        "attempt": 1,
        "worker": "w0",
        "intended_ns": t,
        "invoke_ns": t + MS,
        "complete_ns": t + 4 * MS,
        "type": kind,
        "status": status,
        "code": code,
        "order_id": None,
        "remaining": None,
        "error": None,
    }
    return row | extra


def _history(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=HISTORY_SCHEMA.names)


def _run(rows: list[dict[str, Any]], winners: list[str], stock: int = 10) -> Run:
    orders = [
        TruthOrder(order_id=f"o-{i}", user_id=u, ts_ms=T0_NS // MS + i)
        for i, u in enumerate(winners)
    ]
    truth = Truth(
        product_id="p",
        strategy="lua",
        stock_initial=stock,
        stock_remaining=stock - len(orders),
        buyers=winners,
        orders=orders,
        read_at_ns=T0_NS,
    )
    manifest = {
        "run_id": "r",
        "complete": True,
        "load_start_ns": T0_NS,
        "load_end_ns": T0_NS + 2_000 * MS,
    }
    return Run(Path("."), manifest, _history(rows), pd.DataFrame(), truth)


MIXED = [
    _op(0, 200, "ok", "ok", order_id="o-1", remaining=9),
    _op(1, 409, "busy"),
    _op(2, 409, "already_purchased"),
    _op(3, 410, "sold_out"),
    _op(4, 503, "backend_unavailable"),
    _op(5, 500, None),
    _op(6, 502, None, "info"),
    _op(7, 0, None, "info", error="timeout"),
    _op(8, 404, "not_found"),
    _op(9, 200, "ok", "ok", order_id="o-2", remaining=8),
]


def test_rates_follow_their_documented_definitions() -> None:
    r = stats.rates(_history(MIXED))
    assert r["success_rate"] == pytest.approx(2 / 10)
    assert r["conflict_rate"] == pytest.approx(1 / 10)
    # errors: 503, 500, 502, timeout, 404 (busy/already_purchased/sold_out are answers, not errors)
    assert r["error_rate"] == pytest.approx(5 / 10)
    assert r["indeterminate_rate"] == pytest.approx(2 / 10)
    # unavailable: 503, 500, 502 (5xx) and the timeout (no answer)
    assert r["availability"] == pytest.approx(6 / 10)
    assert r["server_error_rate"] == pytest.approx(1 / 10)  # only the 500


def test_rates_of_an_empty_history_are_none() -> None:
    assert set(stats.rates(_history([])).values()) == {None}


def test_code_counts_label_missing_codes() -> None:
    counts = stats.codes(_history(MIXED))
    assert counts["ok"] == 2
    assert counts["http_500"] == 1 and counts["http_502"] == 1 and counts["no_answer"] == 1
    assert sum(counts.values()) == len(MIXED)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_percentiles_match_numpy(seed: int) -> None:
    values = np.random.default_rng(seed).lognormal(2.0, 1.0, 5_001)
    got = stats.percentiles(values)
    for key, q in [("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)]:
        assert got[key] == pytest.approx(np.percentile(values, q), rel=1e-12)
    assert got["max"] == values.max()


def test_percentiles_on_known_data() -> None:
    got = stats.percentiles(np.arange(1, 101, dtype=float))
    assert got["p50"] == pytest.approx(50.5)
    assert got["p90"] == pytest.approx(90.1)
    assert got["p99"] == pytest.approx(99.01)
    assert got["max"] == 100.0
    assert stats.percentiles(np.array([])) == dict.fromkeys(
        ["p50", "p90", "p95", "p99", "p999", "max"]
    )


def test_response_time_includes_the_wait_before_sending() -> None:
    lat = stats.latency(_history(MIXED))
    assert lat["latency_ms"]["p50"] == pytest.approx(4.0)  # complete - intended
    assert lat["service_latency_ms"]["p50"] == pytest.approx(3.0)  # complete - invoke
    assert lat["latency_ok_ms"]["max"] == pytest.approx(4.0)


def test_fairness_first_come_first_served() -> None:
    rows = [_op(i, 410, "sold_out") for i in range(100)]
    run = _run(rows, winners=[f"u-{i}" for i in range(20)])
    f = stats.fairness(run)
    assert f["early_half_win_share"] == 1.0
    assert f["rank_correlation"] < -0.5
    assert [d["winners"] for d in f["deciles"]] == [10, 10] + [0] * 8
    assert [d["shoppers"] for d in f["deciles"]] == [10] * 10


def test_fairness_last_come_first_served_and_degenerate_cases() -> None:
    rows = [_op(i, 410, "sold_out") for i in range(100)]
    late = stats.fairness(_run(rows, winners=[f"u-{i}" for i in range(80, 100)]))
    assert late["early_half_win_share"] == 0.0
    assert late["rank_correlation"] > 0.5
    nobody = stats.fairness(_run(rows, winners=[]))
    assert nobody["rank_correlation"] is None and nobody["early_half_win_share"] is None


def test_fairness_spearman_matches_rank_pearson() -> None:
    rng = np.random.default_rng(5)
    rows = [_op(i, 410, "sold_out") for i in range(200)]
    won = rng.random(200) < np.linspace(0.9, 0.1, 200)
    f = stats.fairness(_run(rows, winners=[f"u-{i}" for i in np.flatnonzero(won)]))
    expected = pd.Series(np.arange(200)).rank().corr(pd.Series(won.astype(float)).rank())
    assert f["rank_correlation"] == pytest.approx(expected)


@pytest.fixture
def sold_out_run(tmp_path: Path) -> Run:
    write_synthetic(tmp_path, SyntheticSpec(shoppers=500, stock=150, arrival_s=2.0, seed=11))
    return load_run(tmp_path)


def test_sellout_is_the_last_units_order_time(sold_out_run: Run) -> None:
    ts = sorted(o.ts_ms for o in sold_out_run.truth.orders)
    s = stats.sellout(sold_out_run)
    assert s["sellout_s"] == pytest.approx((ts[149] * MS - T0_NS) / 1e9)
    first = sold_out_run.history.loc[
        sold_out_run.history["code"].eq("sold_out"), "complete_ns"
    ].min()
    assert s["sellout_first_answer_s"] == pytest.approx((first - T0_NS) / 1e9)
    assert s["sellout_first_answer_s"] >= s["sellout_s"] - 0.001


def test_no_sellout_when_stock_is_left(tmp_path: Path) -> None:
    write_synthetic(tmp_path, SyntheticSpec(shoppers=100, stock=500))
    assert stats.sellout(load_run(tmp_path)) == {"sellout_s": None, "sellout_first_answer_s": None}


def test_timeseries_adds_up(sold_out_run: Run) -> None:
    ts = stats.timeseries(sold_out_run)
    h = sold_out_run.history
    assert int(ts["attempts"].sum()) == len(h)
    assert int(ts["ok"].sum()) == int(h["type"].eq("ok").sum())
    code_cols = [c for c in ts.columns if c.startswith("code:")]
    assert (ts[code_cols].sum(axis=1) == ts["attempts"]).all()
    assert ts["stock_truth"].iloc[-1] == sold_out_run.truth.stock_remaining == 0
    assert ts["stock_client"].iloc[-1] == 0
    assert ts["stock_truth"].is_monotonic_decreasing and ts["stock_client"].is_monotonic_decreasing
    compact = stats.compact_timeseries(ts)
    assert len(compact["t_s"]) == len(compact["attempts"]) == len(ts)


def test_throughput_and_duration(sold_out_run: Run) -> None:
    m = sold_out_run.manifest
    duration = (m["load_end_ns"] - m["load_start_ns"]) / 1e9
    assert stats.duration_s(sold_out_run) == pytest.approx(duration)
    assert stats.throughput_rps(sold_out_run) == pytest.approx(len(sold_out_run.history) / duration)


def _brute_inversions(won: np.ndarray, level: np.ndarray) -> tuple[int, int]:
    """FCFS inversions spelled out over every pair (the definition, O(n^2))."""
    inversions = pairs = 0
    for w in np.flatnonzero(won):
        for loser in np.flatnonzero(~won):
            if level[loser] >= level[w]:
                pairs += 1
                inversions += int(loser < w)
    return inversions, pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fcfs_inversions_match_the_pairwise_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    won = rng.random(300) < np.linspace(0.8, 0.2, 300)
    level = rng.choice([2, 8, 20], size=300)
    assert stats.fcfs_inversions(won, level) == _brute_inversions(won, level)


def test_fairness_inversions_rate_and_profile_shares() -> None:
    profiles = ["human", "bot"] * 50
    rows = [_op(i, 410, "sold_out", profile=p) for i, p in enumerate(profiles)]
    # FCFS: the first 20 arrivals win, whatever their profile.
    fcfs = stats.fairness(_run(rows, winners=[f"u-{i}" for i in range(20)]))
    assert fcfs["fcfs_inversions"] == 0 and fcfs["fcfs_inversion_rate"] == 0.0
    assert fcfs["fcfs_patience"] == "same profile"  # no profiles recorded in this manifest
    # Bots (odd ranks) take every unit from the back of the queue.
    bots = [f"u-{i}" for i in range(99, 59, -2)]
    run = _run(rows, winners=bots)
    f = stats.fairness(run)
    assert f["fcfs_pairs"] == 20 * 30  # within the bot profile: 20 winners x 30 losing bots
    assert f["fcfs_inversions"] == 20 * 30 and f["fcfs_inversion_rate"] == 1.0
    assert f["profiles"]["bot"] == {
        "shoppers": 50,
        "units": 20,
        "shopper_share": 0.5,
        "unit_share": 1.0,
    }
    assert f["profiles"]["human"]["unit_share"] == 0.0
    # With patience recorded, humans (max_attempts 2) are less patient than bots (20): a bot
    # winning after a human lost is no inversion; humans winning after a bot lost would be.
    run.manifest["experiment"] = {
        "scenario": {
            "profiles": [{"name": "human", "max_attempts": 2}, {"name": "bot", "max_attempts": 20}]
        }
    }
    g = stats.fairness(run)
    assert g["fcfs_patience"] == "max_attempts"
    assert (g["fcfs_inversions"], g["fcfs_pairs"]) == (20 * 30, 20 * 30)


def test_time_to_purchase_by_arrival_decile(sold_out_run: Run) -> None:
    f = stats.fairness(sold_out_run)
    h = sold_out_run.history
    first_ok = h[h["type"].eq("ok")].groupby("shopper")["complete_ns"].min()
    arrived = h.groupby("shopper")["intended_ns"].min()
    waits = ((first_ok - arrived[first_ok.index]) / 1e9).to_numpy()
    top = f["deciles"][0]
    early = first_ok.index < len(arrived) / 10
    assert top["time_to_purchase_p50_s"] == pytest.approx(np.quantile(waits[early], 0.5))
    last = f["deciles"][-1]
    if last["winners"] == 0:
        assert last["time_to_purchase_p50_s"] is None
