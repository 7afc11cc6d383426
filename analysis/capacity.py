"""The machine's capacity as the run measured it (manifest.capacity), and the ideal times it implies.

Before the load, the lab's capacity probe (flashlab.lab.capacity) drives the stack in a closed
loop at the experiment's connection count, with the generator pinned as the load will be:

    capacity.gateway_rps    GET /healthz through nginx: the most this gateway + API answers
    capacity.buy_rps        POST buy on a scratch product (reference strategy lua, unlimited
                            stock, a fresh user per request): the most purchases it sells
    capacity.buy_p50_ms     the median purchase answer at that concurrency
    capacity.wrk_buy_rps    the same purchase path driven by wrk (C), where wrk is installed

From these and the experiment (summary `ideal`):

    ideal.drain_s / drain_ms   shoppers / capacity.buy_rps: the least time in which this machine
                               could answer every shopper once
    ideal.sellout_s            stock / capacity.buy_rps: the least time to sell every unit

A clause may bound a time or rate relative to them (`latency_ms.p99 < 1.5 * ideal.drain_ms`,
flashlab.analysis.hypothesis), so a file travels between machines; `relative` holds the ratios
`flashlab compare` and trial sets show. A number the probe did not measure is None, with
`capacity.reason` saying why, and a clause that needs it is inconclusive (`unmeasured`).
"""

from __future__ import annotations

from typing import Any

CAPACITY_KEYS: tuple[str, ...] = ("gateway_rps", "buy_rps", "buy_p50_ms", "wrk_buy_rps")
IDEAL_KEYS: tuple[str, ...] = ("drain_s", "drain_ms", "sellout_s")

# The unit of each number a relative bound may name (NUMBER * <reference>).
REFERENCE_UNITS: dict[str, str] = {
    "capacity.gateway_rps": "rps",
    "capacity.buy_rps": "rps",
    "capacity.wrk_buy_rps": "rps",
    "capacity.buy_p50_ms": "ms",
    "ideal.drain_s": "s",
    "ideal.drain_ms": "ms",
    "ideal.sellout_s": "s",
}
UNIT_TEXT = {"ms": "ms", "s": "s", "rps": "req/s"}
NOT_RECORDED = "not recorded (a run made before the capacity probe existed)"

# summary `relative`: name -> (numerator path, denominator path); the ratios compare and trials show.
RELATIVE: dict[str, tuple[str, str]] = {
    "p99_over_drain": ("latency_ms.p99", "ideal.drain_ms"),
    "throughput_over_buy": ("throughput_rps", "capacity.buy_rps"),
    "sellout_over_ideal": ("sellout_s", "ideal.sellout_s"),
}


def unit_of(key: str) -> str | None:
    """ "ms", "s" or "rps" for a clause key that is a time or a rate of time, else None.

    The load generator's own health (generator_*) measures the client, not the machine: it has
    no capacity counterpart."""
    parts = key.split(".")
    if parts[0].startswith("generator"):
        return None
    last, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
    if last.endswith("_ms") or parent.endswith("_ms"):
        return "ms"
    if last.endswith("_rps"):
        return "rps"
    if last.endswith("_s"):
        return "s"
    return None


def capacity(manifest: dict[str, Any]) -> dict[str, Any]:
    """summary `capacity`: the probe's record with every CAPACITY_KEYS entry (None: not measured)."""
    raw = manifest.get("capacity")
    if not isinstance(raw, dict):
        return {"available": False, "reason": NOT_RECORDED, **dict.fromkeys(CAPACITY_KEYS)}
    out = dict(raw)
    out["available"] = bool(raw.get("available"))
    out.setdefault("reason", None)
    for key in CAPACITY_KEYS:
        out.setdefault(key, None)
    return out


def ideal(
    capacity_record: dict[str, Any], shoppers: int | None, stock: int | None
) -> dict[str, Any]:
    """summary `ideal`: the least times this machine's measured purchase rate allows."""
    rps = capacity_record.get("buy_rps")
    if not isinstance(rps, int | float) or rps <= 0:
        return dict.fromkeys(IDEAL_KEYS)
    drain = shoppers / rps if shoppers else None
    return {
        "drain_s": _round(drain, 4),
        "drain_ms": _round(drain * 1000 if drain is not None else None, 1),
        "sellout_s": _round(stock / rps if stock else None, 4),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _at(summary: dict[str, Any], path: str) -> float | None:
    node: Any = summary
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def ratio(summary: dict[str, Any], numerator: str, denominator: str) -> float | None:
    """summary[numerator] / summary[denominator]; None when either is missing or the base is 0."""
    top, base = _at(summary, numerator), _at(summary, denominator)
    if top is None or base is None or base <= 0:
        return None
    return round(top / base, 4)


def relative(summary: dict[str, Any]) -> dict[str, float | None]:
    """summary `relative`: each RELATIVE ratio (lower is better but for throughput_over_buy)."""
    return {name: ratio(summary, top, base) for name, (top, base) in RELATIVE.items()}


def unmeasured(summary: dict[str, Any]) -> dict[str, str]:
    """capacity.X / ideal.X key -> why it has no value, for each one the run did not measure."""
    cap = summary.get("capacity") or {}
    why = cap.get("reason") or "the capacity probe did not measure it"
    out: dict[str, str] = {}
    for key in CAPACITY_KEYS:
        if cap.get(key) is None:
            detail = (cap.get("missing") or {}).get(key) or why
            out[f"capacity.{key}"] = f"capacity.{key} not measured: {detail}"
    for key in IDEAL_KEYS:
        if (summary.get("ideal") or {}).get(key) is None:
            out[f"ideal.{key}"] = f"ideal.{key} not known: capacity.buy_rps not measured ({why})"
    return out


def quantity(value: float | None, unit: str | None) -> str:
    """A number with its unit for a clause's sides: 2,480 ms, 1.79 s, 1,980 req/s."""
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:,.0f} ms" if abs(value) >= 100 else f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "rps":
        return f"{value:,.0f} req/s"
    return f"{value:,.4g}"


def headline(summary: dict[str, Any]) -> str:
    """One line: what the probe measured (or why it did not), for the CLI and the report."""
    cap = summary.get("capacity") or {}
    if not any(cap.get(k) is not None for k in CAPACITY_KEYS):
        return f"not measured ({cap.get('reason') or NOT_RECORDED})"
    parts = [
        f"buy {quantity(cap.get('buy_rps'), 'rps')} (p50 {quantity(cap.get('buy_p50_ms'), 'ms')})",
        f"gateway {quantity(cap.get('gateway_rps'), 'rps')}",
    ]
    if cap.get("wrk_buy_rps") is not None:
        parts.append(f"wrk buy {quantity(cap.get('wrk_buy_rps'), 'rps')}")
    took = cap.get("duration_s")
    tail = f" · {cap.get('connections')} conns, probe {took:.1f} s" if took is not None else ""
    return " · ".join(parts) + tail


def ideal_headline(summary: dict[str, Any]) -> str:
    """ "drain 5.05 s · sell-out 0.51 s" (the least times the measured capacity allows)."""
    ide = summary.get("ideal") or {}
    if ide.get("drain_s") is None:
        return "—"
    return f"drain {quantity(ide.get('drain_s'), 's')} · sell-out {quantity(ide.get('sellout_s'), 's')}"
