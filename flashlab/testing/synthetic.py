"""Synthetic run directories for tests, notebooks and report work: a clean seeded sale, optionally with planted anomalies.

`write_synthetic(path, SyntheticSpec(...))` simulates a flash sale against a perfect,
sequential store (seeded: the same spec gives the same files), writes a complete run directory
(manifest, history, faults, truth, metrics) and returns the ids of every planted anomaly.

Planters (`PLANTERS`, name -> function; a new one is one function plus one line) each change the
clean sale in one way and return the ids the checker should report among its examples:
- oversell            k late `sold_out` answers become 200s with extra orders (also breaks conservation)
- negative_stock      k acknowledged answers report remaining = -1..-k                  -> op ids
- lost_acknowledged   k acknowledged orders vanish from Redis, stock restored             -> op ids
- duplicate_purchases k winners buy a second unit (needs k units left)                    -> user ids
- phantom_orders      k winners' 200s become plain 503s: the order exists, nobody was told -> order ids
- indeterminate       k winners' 200s become timeouts (`info`): explained, NOT a phantom   -> order ids
- server_errors       k busy/sold-out answers become 500s                                 -> op ids
- conservation        Redis stock is k higher than initial - orders                       -> []
- server_overcount    the server's purchases counter reads k higher than its real count   -> []
- premature_sold_out  k single-attempt `sold_out` answers moved to complete just before the last
                      sale was sent (a later purchase succeeded)                          -> op ids
- stock_comes_back    Redis restarts without persistence right after the k-th `sold_out` answer and
                      comes back re-seeded: the log loses every earlier order (all acknowledged
                      sales are lost), and the next `stock` sold_out answers become purchases
                      that commit after the restart but time out (`info`) -> the k answers' op ids
- undersold           the latest k buyers never bought and nobody hears "sold out": those 200s
                      and every `sold_out` answer become a final 409 busy; k units stay     -> []
`generator` is the load generator's recorded health (default healthy; `OVERLOADED` is not; None
writes no generator data, like a run from before it was recorded).
An `Outage` makes every attempt sent during [start_s, end_s + tail_s) a 503 and records a fault
row with recover at end_s, so recovery metrics have a known answer (tail_s = slow recovery).
"""

from __future__ import annotations

import heapq
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flashlab.core import rundir
from flashlab.core.contract import BUY_PATH
from flashlab.core.rundir import HISTORY_SCHEMA

T0_NS = 1_700_000_000_000_000_000  # fixed epoch: synthetic files are byte-for-byte reproducible
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
DEFAULT_HYPOTHESIS = ("oversell == 0", "lost_acknowledged == 0")


@dataclass(frozen=True)
class Generator:
    """The load generator's health as an engine records it (manifest.engine.generator)."""

    lag_ms_p99: float = 1.5
    lag_ms_max: float = 4.0
    stalled_s: float = 0.0
    cpu_pct_max: float = 35.0

    def manifest(self) -> dict[str, Any]:
        worker = {
            "lag_ms_p50": round(self.lag_ms_p99 / 3, 3),
            "lag_ms_p99": self.lag_ms_p99,
            "lag_ms_max": self.lag_ms_max,
            "lag_samples": 50,
            "stalls": math.ceil(self.stalled_s / 0.15) if self.stalled_s else 0,
            "stalled_s": self.stalled_s,
            "cpu_pct_avg": round(self.cpu_pct_max * 0.8, 1),
            "cpu_pct_max": self.cpu_pct_max,
        }
        summary = {k: worker[k] for k in ("lag_ms_p99", "lag_ms_max", "stalled_s", "cpu_pct_max")}
        return {"workers": {"synthetic-0": worker}, **summary}


@dataclass(frozen=True)
class Capacity:
    """The capacity probe's record (manifest.capacity, flashlab.lab.capacity) of a made-up machine."""

    gateway_rps: float = 4000.0
    buy_rps: float = 2000.0
    buy_p50_ms: float = 10.0
    wrk_buy_rps: float | None = 2200.0

    def manifest(self) -> dict[str, Any]:
        return {
            "available": True,
            "reason": None,
            "strategy": "lua",
            "connections": 64,
            "probe_s": 1.5,
            "gateway_rps": self.gateway_rps,
            "buy_rps": self.buy_rps,
            "buy_p50_ms": self.buy_p50_ms,
            "wrk_buy_rps": self.wrk_buy_rps,
            "missing": {} if self.wrk_buy_rps is not None else {"wrk_buy_rps": "wrk not installed"},
            "duration_s": 4.5,
        }


OVERLOADED = Generator(lag_ms_p99=180.0, lag_ms_max=950.0, stalled_s=2.4, cpu_pct_max=99.5)


@dataclass(frozen=True)
class Outage:
    start_s: float
    end_s: float
    tail_s: float = 0.0  # 503s go on this long after the recorded recovery
    fault: str = "redis-kill"
    target: str = "redis"


@dataclass
class SyntheticSpec:
    run_id: str = "synthetic"
    product_id: str = "synthetic"
    strategy: str = "lua"
    seed: int = 1
    shoppers: int = 300
    stock: int = 100
    arrival_s: float = 1.0  # arrivals uniform over [0, arrival_s)
    busy_p: float = 0.2  # chance an attempt loses the race (409 busy)
    max_attempts: int = 4
    backoff_ms: float = 40.0
    service_ms: float = 2.0  # median service time (lognormal)
    outage: Outage | None = None
    hypothesis: list[str] = field(default_factory=lambda: list(DEFAULT_HYPOTHESIS))
    plant: dict[str, int] = field(default_factory=dict)  # planter name -> count
    metrics: bool = True
    generator: Generator | None = field(default_factory=Generator)  # None: an older run, no data
    capacity: Capacity | None = field(default_factory=Capacity)  # None: no probe (an older run)


@dataclass
class Sale:
    """A sale being built: history rows, Redis truth, and the server's purchase count."""

    history: pd.DataFrame
    orders: list[dict[str, Any]]
    stock_initial: int
    stock_remaining: int
    server_purchases: int
    next_seq: int
    # users a planter already changed: planters never overlap, so counts stay exact
    touched: set[str] = field(default_factory=set)


# --- the clean sale ----------------------------------------------------------------------------


def _row(
    spec: SyntheticSpec, shopper: int, attempt: int, intended: int, invoke: int, complete: int
) -> dict[str, Any]:
    return {
        "run_id": spec.run_id,
        "op_id": f"{shopper}:{attempt}",
        "shopper": shopper,
        "user_id": f"u-{shopper}",
        "profile": "patient",
        "attempt": attempt,
        "worker": f"w{shopper % 2}",
        "intended_ns": intended,
        "invoke_ns": invoke,
        "complete_ns": complete,
        "type": "fail",
        "status": 0,
        "code": None,
        "order_id": None,
        "remaining": None,
        "error": None,
    }


def _in_outage(spec: SyntheticSpec, invoke_ns: int) -> bool:
    o = spec.outage
    if o is None:
        return False
    rel = (invoke_ns - T0_NS) / NS_PER_S
    return o.start_s <= rel < o.end_s + o.tail_s


def _serve(
    spec: SyntheticSpec,
    rng: np.random.Generator,
    row: dict[str, Any],
    orders: list[dict[str, Any]],
    stock: int,
) -> bool:
    """Answer one attempt in place (appending to `orders` on a sale); True if the shopper retries."""
    if _in_outage(spec, row["invoke_ns"]):
        row.update(
            status=503, code="backend_unavailable", complete_ns=row["invoke_ns"] + NS_PER_MS // 2
        )
        return True
    if stock <= 0:
        row.update(status=410, code="sold_out")
        return False
    if rng.random() < spec.busy_p:
        row.update(status=409, code="busy")
        return True
    order_id = f"o-{len(orders) + 1}"
    server_ms = (row["invoke_ns"] + row["complete_ns"]) // 2 // NS_PER_MS
    orders.append({"order_id": order_id, "user_id": row["user_id"], "ts_ms": server_ms})
    row.update(type="ok", status=200, code="ok", order_id=order_id, remaining=stock - 1)
    return False


def simulate(spec: SyntheticSpec) -> Sale:
    """A perfect sequential store: attempts are served in server-time order; busy and 503s retry."""
    rng = np.random.default_rng(spec.seed)
    arrivals = np.sort(rng.uniform(0, spec.arrival_s, spec.shoppers))
    # (server_ns, shopper, attempt, intended_ns, invoke_ns): served in server-time order
    queue: list[tuple[int, int, int, int, int]] = []

    def push(shopper: int, attempt: int, intended: int) -> None:
        invoke = intended + int(rng.exponential(0.2) * NS_PER_MS)  # client-side send lag
        service = int(rng.lognormal(math.log(spec.service_ms), 0.5) * NS_PER_MS)
        heapq.heappush(queue, (invoke + service // 2, shopper, attempt, intended, invoke))

    for shopper, at in enumerate(arrivals):
        push(shopper, 1, T0_NS + int(at * NS_PER_S))
    rows: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    while queue:
        server, shopper, attempt, intended, invoke = heapq.heappop(queue)
        row = _row(spec, shopper, attempt, intended, invoke, server + (server - invoke))
        retry = _serve(spec, rng, row, orders, spec.stock - len(orders))
        rows.append(row)
        if retry and attempt < spec.max_attempts:
            backoff = spec.backoff_ms * 2 ** (attempt - 1) * rng.uniform(0.5, 1.0)
            push(shopper, attempt + 1, row["complete_ns"] + int(backoff * NS_PER_MS))
    history = pd.DataFrame(rows, columns=HISTORY_SCHEMA.names)
    left = spec.stock - len(orders)
    return Sale(history, orders, spec.stock, left, len(orders), len(orders) + 1)


# --- planters ----------------------------------------------------------------------------------


def _pick(sale: Sale, frame: pd.DataFrame, k: int, what: str) -> pd.DataFrame:
    """The k latest rows of `frame` from distinct users no other planter touched (deterministic)."""
    frame = frame[~frame["user_id"].isin(sale.touched)].drop_duplicates("user_id", keep="last")
    if len(frame) < k:
        raise ValueError(f"plant: need {k} {what}, the synthetic sale has {len(frame)}")
    chosen = frame.sort_values(["complete_ns", "op_id"], kind="stable").iloc[len(frame) - k :]
    sale.touched.update(chosen["user_id"])
    return chosen


ACK_FIELDS = ["type", "status", "code", "order_id", "remaining"]


def _ok_rows(sale: Sale) -> pd.DataFrame:
    return sale.history[sale.history["type"].eq("ok")]


def plant_oversell(sale: Sale, k: int) -> list[str]:
    h = sale.history
    chosen = _pick(sale, h[h["code"].eq("sold_out")], k, "sold_out answers")
    planted = []
    for idx in chosen.index:
        order_id = f"o-{sale.next_seq}"
        sale.next_seq += 1
        ts_ms = int(h.at[idx, "invoke_ns"] + h.at[idx, "complete_ns"]) // 2 // NS_PER_MS
        sale.orders.append({"order_id": order_id, "user_id": h.at[idx, "user_id"], "ts_ms": ts_ms})
        h.loc[idx, ACK_FIELDS] = ["ok", 200, "ok", order_id, 0]
        sale.server_purchases += 1
        planted.append(order_id)
    return planted


def plant_negative_stock(sale: Sale, k: int) -> list[str]:
    chosen = _pick(sale, _ok_rows(sale), k, "acknowledged purchases")
    sale.history.loc[chosen.index, "remaining"] = -np.arange(1, k + 1)
    return list(chosen["op_id"])


def plant_lost_acknowledged(sale: Sale, k: int) -> list[str]:
    chosen = _pick(sale, _ok_rows(sale), k, "acknowledged purchases")
    lost = set(chosen["order_id"])
    sale.orders = [o for o in sale.orders if o["order_id"] not in lost]
    sale.stock_remaining += k  # as if Redis restored an older snapshot: stock and orders agree
    return list(chosen["op_id"])


def plant_duplicate_purchases(sale: Sale, k: int) -> list[str]:
    if sale.stock_remaining < k:
        raise ValueError(
            f"plant: duplicate_purchases needs {k} units left, {sale.stock_remaining} remain"
        )
    h = sale.history
    chosen = _pick(sale, _ok_rows(sale), k, "acknowledged purchases")
    extra = []
    for _, row in chosen.iterrows():
        attempt = int(h.loc[h["shopper"].eq(row["shopper"]), "attempt"].max()) + 1
        order_id = f"o-{sale.next_seq}"
        sale.next_seq += 1
        sale.stock_remaining -= 1
        shift = 10 * NS_PER_MS
        dup = row.to_dict() | {
            "op_id": f"{row['shopper']}:{attempt}",
            "attempt": attempt,
            "intended_ns": row["complete_ns"] + shift,
            "invoke_ns": row["complete_ns"] + shift,
            "complete_ns": row["complete_ns"] + 2 * shift,
            "order_id": order_id,
            "remaining": sale.stock_remaining,
        }
        extra.append(dup)
        ts_ms = (row["complete_ns"] + shift) // NS_PER_MS
        sale.orders.append({"order_id": order_id, "user_id": row["user_id"], "ts_ms": int(ts_ms)})
        sale.server_purchases += 1
    sale.history = pd.concat([h, pd.DataFrame(extra, columns=h.columns)], ignore_index=True)
    return list(chosen["user_id"])


def _unacknowledge(sale: Sale, k: int, as_info: bool) -> list[str]:
    h = sale.history
    info_users = set(h.loc[h["type"].eq("info"), "user_id"])
    candidates = _ok_rows(sale)
    chosen = _pick(
        sale, candidates[~candidates["user_id"].isin(info_users)], k, "acknowledged purchases"
    )
    fields = [*ACK_FIELDS, "error"]
    answer = ["info", 0, None] if as_info else ["fail", 503, "backend_unavailable"]
    sale.history.loc[chosen.index, fields] = [*answer, None, None, "timeout" if as_info else None]
    return list(chosen["order_id"])


def plant_phantom_orders(sale: Sale, k: int) -> list[str]:
    return _unacknowledge(sale, k, as_info=False)


def plant_indeterminate(sale: Sale, k: int) -> list[str]:
    return _unacknowledge(sale, k, as_info=True)


def plant_server_errors(sale: Sale, k: int) -> list[str]:
    h = sale.history
    chosen = _pick(sale, h[h["code"].isin(["busy", "sold_out"])], k, "busy/sold_out answers")
    h.loc[chosen.index, ["status", "code"]] = [500, None]
    return list(chosen["op_id"])


def plant_conservation(sale: Sale, k: int) -> list[str]:
    sale.stock_remaining += k
    return []


def plant_server_overcount(sale: Sale, k: int) -> list[str]:
    sale.server_purchases += k
    return []


def plant_premature_sold_out(sale: Sale, k: int) -> list[str]:
    h = sale.history
    sold_out = h[h["code"].eq("sold_out") & h["attempt"].eq(1)]
    chosen = _pick(sale, sold_out, k, "single-attempt sold_out answers")
    last_sale = int(_ok_rows(sale)["invoke_ns"].max())
    for i, idx in enumerate(chosen.index):
        complete = last_sale - NS_PER_MS - i * 1_000  # told "sold out" before the last sale began
        h.loc[idx, ["intended_ns", "invoke_ns", "complete_ns"]] = [complete - NS_PER_MS] * 2 + [
            complete
        ]
    return list(chosen["op_id"])


def plant_stock_comes_back(sale: Sale, k: int) -> list[str]:
    h = sale.history
    sold_out = h[h["code"].eq("sold_out") & ~h["user_id"].isin(sale.touched)]
    sold_out = sold_out.sort_values(["complete_ns", "op_id"], kind="stable")
    if len(sold_out) < k + sale.stock_initial or sold_out["user_id"].duplicated().any():
        raise ValueError(f"plant: stock_comes_back needs {k} + stock sold_out answers")
    told, resold = sold_out.iloc[:k], sold_out.iloc[k : k + sale.stock_initial]
    sale.touched.update(told["user_id"])
    sale.touched.update(resold["user_id"])
    # The restarted Redis has no log (its order sequence starts at o-1 again) and the product is
    # re-seeded with its stock.
    sale.orders = []
    for n, (idx, row) in enumerate(resold.iterrows(), start=1):
        ts_ms = int(row["invoke_ns"] + row["complete_ns"]) // 2 // NS_PER_MS
        sale.orders.append({"order_id": f"o-{n}", "user_id": row["user_id"], "ts_ms": ts_ms})
        h.loc[idx, [*ACK_FIELDS, "error"]] = ["info", 0, None, None, None, "timeout"]
    sale.stock_remaining = sale.stock_initial - len(resold)
    sale.server_purchases += len(resold)
    return list(told["op_id"])


def plant_undersold(sale: Sale, k: int) -> list[str]:
    h = sale.history
    chosen = _pick(sale, _ok_rows(sale), k, "acknowledged purchases")
    lost = set(chosen["order_id"])
    sale.orders = [o for o in sale.orders if o["order_id"] not in lost]
    # Nobody hears "sold out": the latest k buyers and every shopper after them get 409 busy on
    # their last attempt and give up, with k units left (a lock that turns everyone away).
    turned_away = h.index[h["code"].eq("sold_out")].union(chosen.index)
    h.loc[turned_away, ACK_FIELDS] = ["fail", 409, "busy", None, None]
    sale.stock_remaining += k
    sale.server_purchases -= k
    return []


def plant_unknown_answers(sale: Sale, k: int) -> list[str]:
    """k "sold out" answers a target's rules would not have recognised (outcome unknown)."""
    h = sale.history
    chosen = _pick(sale, h[h["code"].eq("sold_out")], k, "sold_out answers")
    answer = ["info", 418, "unknown", None, None, "HTTP 418: I'm a teapot"]
    h.loc[chosen.index, [*ACK_FIELDS, "error"]] = answer
    return list(chosen["op_id"])


PLANTERS: dict[str, Callable[[Sale, int], list[str]]] = {
    "oversell": plant_oversell,
    "negative_stock": plant_negative_stock,
    "lost_acknowledged": plant_lost_acknowledged,
    "duplicate_purchases": plant_duplicate_purchases,
    "phantom_orders": plant_phantom_orders,
    "indeterminate": plant_indeterminate,
    "server_errors": plant_server_errors,
    "conservation": plant_conservation,
    "server_overcount": plant_server_overcount,
    "premature_sold_out": plant_premature_sold_out,
    "stock_comes_back": plant_stock_comes_back,
    "undersold": plant_undersold,
    "unknown_answers": plant_unknown_answers,
}


# --- writing the run directory -----------------------------------------------------------------


def _manifest(spec: SyntheticSpec, history: pd.DataFrame) -> dict[str, Any]:
    end = int(history["complete_ns"].max()) if len(history) else T0_NS
    experiment = {
        "name": spec.run_id,
        "seed": spec.seed,
        "product": {"id": spec.product_id, "stock": spec.stock, "strategy": spec.strategy},
        "scenario": {
            "shoppers": spec.shoppers,
            "arrival": {"kind": "spike", "window_s": spec.arrival_s},
        },
        "faults": [],
        "hypothesis": list(spec.hypothesis),
    }
    return {
        "run_id": spec.run_id,
        "complete": True,
        "synthetic": True,
        "experiment": experiment,
        "load_start_ns": T0_NS,
        "load_end_ns": end,
        "stack": {"platform": "synthetic"},
        "engine": {"engine": "synthetic", "workers": 1}
        | ({"generator": spec.generator.manifest()} if spec.generator is not None else {}),
        **({"capacity": spec.capacity.manifest()} if spec.capacity is not None else {}),
        "versions": {},
        "git_revision": None,
        "host": {},
        "started_at": "2023-11-14T22:13:20+00:00",
        "finished_at": "2023-11-14T22:13:30+00:00",
    }


def _faults_table(spec: SyntheticSpec) -> pa.Table:
    o = spec.outage
    rows = (
        []
        if o is None
        else [
            {
                "fault": o.fault,
                "index": 0,
                "target": o.target,
                "inject_ns": T0_NS + int(o.start_s * NS_PER_S),
                "recover_ns": T0_NS + int(o.end_s * NS_PER_S),
                "params": "{}",
                "observed": None,
                "error": None,
            }
        ]
    )
    return pa.Table.from_pylist(rows, schema=rundir.FAULTS_SCHEMA)


def metrics_text(strategy: str, purchases: int, ok_answers: int) -> str:
    """A /metrics exposition with the two counters reconciliation reads."""
    return (
        "# HELP flashlab_purchases_total Units sold (200 answers)\n"
        "# TYPE flashlab_purchases_total counter\n"
        f'flashlab_purchases_total{{strategy="{strategy}"}} {float(purchases)}\n'
        "# HELP flashlab_http_requests_total HTTP requests answered\n"
        "# TYPE flashlab_http_requests_total counter\n"
        f'flashlab_http_requests_total{{code="ok",route="{BUY_PATH}",status="200"}} {float(ok_answers)}\n'
    )


def _metrics(spec: SyntheticSpec, sale: Sale, end_ns: int) -> list[dict[str, Any]]:
    ok = int(sale.history["type"].eq("ok").sum())
    return [
        {"ts_ns": T0_NS - NS_PER_S // 2, "text": metrics_text(spec.strategy, 0, 0)},
        {
            "ts_ns": end_ns + NS_PER_S // 2,
            "text": metrics_text(spec.strategy, sale.server_purchases, ok),
        },
    ]


def _truth(spec: SyntheticSpec, sale: Sale, end_ns: int) -> dict[str, Any]:
    orders = sorted(sale.orders, key=lambda o: (o["ts_ms"], o["order_id"]))
    return rundir.Truth(
        product_id=spec.product_id,
        strategy=spec.strategy,
        stock_initial=sale.stock_initial,
        stock_remaining=sale.stock_remaining,
        buyers=sorted({o["user_id"] for o in orders}),
        orders=[rundir.TruthOrder(**o) for o in orders],
        read_at_ns=end_ns + NS_PER_S,
    ).model_dump(mode="json")


def write_synthetic(path: Path | str, spec: SyntheticSpec | None = None) -> dict[str, list[str]]:
    """Write a complete synthetic run directory at `path`; returns planter name -> planted ids."""
    spec = spec or SyntheticSpec()
    unknown = sorted(set(spec.plant) - set(PLANTERS))
    if unknown:
        raise ValueError(f"plant: unknown anomaly {unknown[0]!r} (allowed: {', '.join(PLANTERS)})")
    sale = simulate(spec)
    planted = {name: PLANTERS[name](sale, k) for name, k in spec.plant.items()}
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    history = sale.history.sort_values(["complete_ns", "op_id"], kind="stable")
    table = pa.Table.from_pandas(history, schema=HISTORY_SCHEMA, preserve_index=False)
    pq.write_table(table, path / rundir.HISTORY, write_page_checksum=True)
    pq.write_table(_faults_table(spec), path / rundir.FAULTS, write_page_checksum=True)
    manifest = _manifest(spec, history)
    end = manifest["load_end_ns"]
    rundir.write_json_atomic(path / rundir.TRUTH, _truth(spec, sale, end))
    if spec.metrics:
        rundir.write_json_atomic(path / rundir.METRICS, _metrics(spec, sale, end))
    rundir.write_json_atomic(path / rundir.MANIFEST, manifest)  # last: complete=true
    return planted


def write_synthetic_set(path: Path | str, specs: list[SyntheticSpec]) -> Path:
    """A complete synthetic trial set (flashlab.analysis.trials format): one trial per spec.

    Only the trial runs and trialset.json are written (like the orchestrator before it judges);
    `flashlab.analysis.outputs.write_set_outputs(path)` adds trials.parquet/json/html.
    """
    # start-up cost: only this path pays for matplotlib, prometheus_client
    from flashlab.analysis.trials import SEED_RULE
    from flashlab.analysis.trials import SET_MANIFEST
    from flashlab.analysis.trials import trial_name

    path = Path(path)
    names = [trial_name(i) for i in range(1, len(specs) + 1)]
    for name, spec in zip(names, specs, strict=True):
        write_synthetic(path / name, spec)
    first = json.loads((path / names[0] / rundir.MANIFEST).read_text())
    manifest = {
        "kind": "trial-set",
        "set_id": path.name,
        "synthetic": True,
        "repeat": len(specs),
        "seed_rule": SEED_RULE,
        "seeds": [spec.seed for spec in specs],
        "trials": names,
        "experiment": first["experiment"],
        "complete": True,
    }
    rundir.write_json_atomic(path / SET_MANIFEST, manifest)
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m flashlab.testing.synthetic DIR [anomaly=count ...]`: write a synthetic run for notebooks/reports."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(
            "usage: python -m flashlab.testing.synthetic DIR [anomaly=count ...]", file=sys.stderr
        )
        return 2
    plant: dict[str, int] = {}
    for arg in args[1:]:
        name, _, count = arg.partition("=")
        if not count.isdigit():
            print(f"{arg}: expected anomaly=count, e.g. oversell=3", file=sys.stderr)
            return 2
        plant[name] = int(count)
    try:
        planted = write_synthetic(args[0], SyntheticSpec(plant=plant))
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps({"run_dir": args[0], "planted": planted}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
