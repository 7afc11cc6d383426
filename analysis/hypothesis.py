"""Steady-state hypotheses: clauses like `oversell == 0` or `latency_ms.p99 < 800` over summary keys.

A clause is `<key> <op> <bound>`, the bound a number or `<factor> * <reference>`, a multiple of
what the run measured of its machine (flashlab.analysis.capacity): `latency_ms.p99 < 1.5 *
ideal.drain_ms`, `throughput_rps > 0.7 * capacity.buy_rps`. A relative bound needs a time or
rate on the left in the reference's unit (ms, s or req/s) and a factor > 0; it is judged against
factor x the reference's value in this run, and is inconclusive when the run did not measure it.
`<key>` is one of
- `<key>[.<sub>]`                     a SUMMARY_KEYS entry, e.g. `oversell`, `latency_ms.p99`;
- `recovery.<fault>.<metric>`         per-fault recovery (RECOVERY_METRICS), the worst occurrence;
- `window.<fault>.<metric>`           per-fault window figures (WINDOW_METRICS), the worst occurrence;
- `phase.<phase>.<key>[.<sub>]`       PHASE_KEYS over one phase (PHASES) of the load;
- `fairness.profiles.<profile>.<m>`   one behaviour profile's figures (PROFILE_METRICS), e.g.
                                      `fairness.profiles.bot.unit_share < 0.4` (bots' share of units).
Keys are checked when the experiment file is loaded, so a typo fails fast (exit 2) with the closest
valid key, instead of after a ten-minute run. Whether `<fault>` is one the experiment schedules (and
`<profile>` one its scenario has) is checked by the experiment model (flashlab.lab.experiment).

Each clause has a class (`clause_class`): *safety* (oversell, lost orders, 5xx, ...) always
decides; *timing* (latency, throughput, durations, recovery, generator health) is judged only
when the measurement can be trusted, else its status is "inconclusive" (see `judge`).
The run's verdict is three-valued, as Jepsen's `:valid?` true / false / :unknown:
any failed clause -> "fail"; else any inconclusive clause -> "inconclusive"; else "pass".
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Literal

from flashlab.analysis.capacity import CAPACITY_KEYS
from flashlab.analysis.capacity import IDEAL_KEYS
from flashlab.analysis.capacity import REFERENCE_UNITS
from flashlab.analysis.capacity import UNIT_TEXT
from flashlab.analysis.capacity import quantity
from flashlab.analysis.capacity import unit_of
from flashlab.analysis.checker import CHECK_KEYS
from flashlab.analysis.checker import LOADED_CHECKS
from flashlab.analysis.checker import summary_keys as check_summary_keys
from flashlab.analysis.summary_schema import PERCENTILE_KEYS
from flashlab.core.errors import UserError

# Summary keys a hypothesis may name; dicts list their sub-keys. The checks' keys come from the
# check registry (flashlab.analysis.checks): a new check's count is a clause key by itself.
SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(check_summary_keys(), ()),
    "sold": (),
    "stock_initial": (),
    "stock_remaining": (),
    "shoppers": (),
    "attempts": (),
    "conflict_rate": (),
    "success_rate": (),
    "error_rate": (),
    "indeterminate_rate": (),
    "server_error_rate": (),  # 5xx other than 503 (a 500 is always a bug)
    "unknown_rate": (),  # a target's answers no rule matched (docs/TARGETS.md)
    "acknowledged": (),
    "availability": (),
    "throughput_rps": (),
    "duration_s": (),
    "sellout_s": (),
    "latency_ms": PERCENTILE_KEYS,
    "service_latency_ms": PERCENTILE_KEYS,
    "fairness": (
        "rank_correlation",
        "early_half_win_share",
        "fcfs_inversions",
        "fcfs_inversion_rate",
    ),
    # Load-generator health (manifest.engine.generator): e.g. `generator_stalled_s < 0.5` makes a
    # run whose client stalled fail instead of reporting the client's delay as server latency.
    "generator_lag_ms_p99": (),
    "generator_stalled_s": (),
    # The machine's capacity, measured before the load, and the least times it allows
    # (flashlab.analysis.capacity): `capacity.buy_rps > 0.5 * capacity.gateway_rps`.
    "capacity": CAPACITY_KEYS,
    "ideal": IDEAL_KEYS,
}

# Per-fault figures (summary["by_fault"][<fault>]; flashlab.analysis.recovery.by_fault), worst case
# over the fault's occurrences.
RECOVERY_METRICS = ("time_to_recover_s", "first_success_s")
WINDOW_METRICS = ("availability", "attempts", "baseline_availability")
# Per behaviour profile (summary["fairness"]["profiles"][<profile>]; flashlab.analysis.stats).
PROFILE_METRICS = ("shoppers", "units", "shopper_share", "unit_share")
# Phases of the load, cut at the first inject and the last recover of faults.parquet
# (summary["phase"][<phase>]; flashlab.analysis.recovery.phases).
PHASES = ("before_faults", "during_faults", "after_faults")
PHASE_KEYS: dict[str, tuple[str, ...]] = {
    key: SUMMARY_KEYS[key]
    for key in (
        "attempts",
        "success_rate",
        "conflict_rate",
        "error_rate",
        "indeterminate_rate",
        "server_error_rate",
        "availability",
        "throughput_rps",
        "duration_s",
        "latency_ms",
        "service_latency_ms",
    )
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


def holds(measured: float | None, op: str, value: float) -> bool:
    """`measured op value` for a clause's or a live guard's comparison; a value that could not be
    measured (e.g. no sell-out) satisfies nothing."""
    return measured is not None and bool(_OPS[op](measured, value))


_KEY = r"[a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_-]+)*"
_CLAUSE = re.compile(
    rf"^\s*({_KEY})\s*(==|!=|<=|>=|<|>)\s*(-?[0-9.eE+]+)(?:\s*[*×]\s*([A-Za-z_][\w.-]*))?\s*$"
)


ClauseClass = Literal["safety", "timing"]
Status = Literal["pass", "fail", "inconclusive"]
Verdict = Literal["pass", "fail", "inconclusive"]

# Summary heads whose values are times or rates of time: they measure the client as much as the
# server, so an untrusted measurement (starved generator, failed isolation) cannot decide them.
TIMING_HEADS = frozenset(
    {"throughput_rps", "duration_s", "sellout_s", "recovery", "window", "capacity", "ideal"}
)
TIMING_PREFIXES = ("latency", "service_latency", "generator_")


# A host whose CPU speed varied by no more than this (p90/p10 of the probe's unit time over the
# load) is steady: clauses are judged as measured. Measured here on a quiet 2-vCPU VM: 1.0-1.1 in
# calm minutes, 1.3-1.9 when the neighbours were busy (flashlab.lab.hostspeed, docs/METHOD.md).
HOST_SPREAD_STEADY = 1.10


def clause_class(key: str) -> ClauseClass:
    """ "timing" for latency/service_latency, throughput, durations, recovery.*, window.*,
    generator_*; a check's keys take the class the check declares; "safety" for everything else.
    `phase.<name>.<key>` takes the class of <key>."""
    parts = key.split(".")
    if parts[0] == "phase" and len(parts) >= 3:
        return clause_class(".".join(parts[2:]))
    head = parts[0]
    if head in CHECK_KEYS:  # a check declares the class of its keys
        return LOADED_CHECKS[CHECK_KEYS[head]].clause_class
    if head in TIMING_HEADS or head.startswith(TIMING_PREFIXES):
        return "timing"
    return "safety"


class HypothesisError(UserError, ValueError):
    """A hypothesis clause that does not parse or names no known metric: one line, exit 2."""


@dataclass(frozen=True)
class Clause:
    key: str
    op: str
    value: float  # the bound; for a relative clause, the factor
    text: str
    path: tuple[str, ...] = ()  # where the value lives in summary.json; () = key split on dots
    fault: str | None = None  # the fault a `recovery.`/`window.` clause names
    profile: str | None = None  # the profile a `fairness.profiles.` clause names
    # A relative clause's reference, e.g. ideal.drain_ms: the bound is value x its measured value.
    ref: str | None = None

    @property
    def needs_capacity(self) -> bool:
        """Whether judging it takes the capacity probe (a relative bound, or a capacity/ideal key)."""
        return self.ref is not None or self.key.split(".")[0] in ("capacity", "ideal")

    def measure(self, summary: dict[str, Any]) -> float | None:
        return _measure(summary, self.path or tuple(self.key.split(".")))

    def evaluate(self, summary: dict[str, Any]) -> dict[str, Any]:
        measured = self.measure(summary)
        out: dict[str, Any] = {"clause": self.text, "key": self.key, "op": self.op}
        expected: float | None = self.value
        if self.ref is not None:
            ref_value = _measure(summary, tuple(self.ref.split(".")))
            expected = None if ref_value is None else self.value * ref_value
            ratio = measured / ref_value if measured is not None and ref_value else None
            out |= {"factor": self.value, "ref": self.ref, "ref_value": ref_value, "ratio": ratio}
        ok = expected is not None and holds(measured, self.op, expected)
        return out | {
            "expected": expected,
            "measured": measured,
            "ok": ok,
            "class": clause_class(self.key),
            "status": "pass" if ok else "fail",
        }


def _measure(summary: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = summary
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return None if node is None else float(node)


def sides(result: dict[str, Any]) -> str:
    """A judged clause with both sides evaluated, e.g. `latency_ms.p99 2,480 ms < 1.5 x
    ideal.drain_ms 1,790 ms = 2,685 ms` (an absolute one: `latency_ms.p99 2,480 ms < 12,000 ms`)."""
    key = str(result["key"])
    return f"{key} {quantity(result.get('measured'), unit_of(key))} {bound_text(result)}"


def bound_text(result: dict[str, Any]) -> str:
    """The right-hand side of a judged clause: `< 12,000 ms`, or for a relative bound
    `< 1.5 x ideal.drain_ms 1,790 ms = 2,685 ms` (its reference as this run measured it)."""
    unit = unit_of(str(result["key"]))
    ref = result.get("ref")
    if ref is None:
        return f"{result['op']} {quantity(result.get('expected'), unit)}"
    ref_unit = REFERENCE_UNITS.get(str(ref), unit)
    right = f"{result['op']} {result['factor']:g} × {ref}"
    if result.get("ref_value") is None or result.get("expected") is None:
        return f"{right} (not measured)"
    ref_value, bound = (
        quantity(result["ref_value"], ref_unit),
        quantity(result["expected"], ref_unit),
    )
    return f"{right} {ref_value} = {bound}"


def _flat(keys: dict[str, tuple[str, ...]], prefix: str = "") -> list[str]:
    return [
        f"{prefix}{k}.{sub}" if sub else f"{prefix}{k}"
        for k, subs in keys.items()
        for sub in subs or ("",)
    ]


def valid_keys(fault: str = "<fault>") -> list[str]:
    """Every key a clause may name (per-fault keys spelled with `fault`): for 'did you mean'."""
    keys = _flat(SUMMARY_KEYS)
    keys += [f"recovery.{fault}.{m}" for m in RECOVERY_METRICS]
    keys += [f"window.{fault}.{m}" for m in WINDOW_METRICS]
    keys += [k for p in PHASES for k in _flat(PHASE_KEYS, f"phase.{p}.")]
    keys += [f"fairness.profiles.<profile>.{m}" for m in PROFILE_METRICS]
    return keys


def _unknown(key: str, text: str) -> HypothesisError:
    parts = key.split(".")
    fault = parts[1] if len(parts) > 2 and parts[0] in ("recovery", "window") else "<fault>"
    close = difflib.get_close_matches(key, valid_keys(fault), n=1, cutoff=0.6)
    allowed = [
        *SUMMARY_KEYS,
        "recovery.<fault>.*",
        "window.<fault>.*",
        "phase.<phase>.*",
        "fairness.profiles.<profile>.*",
    ]
    hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
    head, _, sub = key.partition(".")
    if key.startswith("fairness.profiles"):
        return HypothesisError(
            f"{key!r} in {text!r}: expected fairness.profiles.<profile>.<metric>, metric one of "
            f"{', '.join(PROFILE_METRICS)}"
        )
    if SUMMARY_KEYS.get(head):
        return HypothesisError(
            f"{head!r} needs one of .{', .'.join(SUMMARY_KEYS[head])} in {text!r} ({hint})"
        )
    if head in SUMMARY_KEYS and sub:
        return HypothesisError(f"{head!r} has no sub-key (got {key!r}; {hint})")
    return HypothesisError(f"unknown key {key!r} in {text!r} ({hint})")


def _check_flat(key: str, keys: dict[str, tuple[str, ...]]) -> bool:
    head, _, sub = key.partition(".")
    if head not in keys:
        return False
    subs = keys[head]
    return sub in subs if subs else not sub


def _resolve(key: str, text: str) -> tuple[tuple[str, ...], str | None]:
    """(summary path, fault name) of a valid key; HypothesisError naming the closest key if not."""
    parts = key.split(".")
    if parts[:2] == ["fairness", "profiles"]:
        if len(parts) != 4 or not parts[2] or parts[3] not in PROFILE_METRICS:
            raise _unknown(key, text)
        return tuple(parts), None
    if parts[0] in ("recovery", "window"):
        metrics = RECOVERY_METRICS if parts[0] == "recovery" else WINDOW_METRICS
        if len(parts) != 3 or parts[2] not in metrics or not parts[1]:
            raise _unknown(key, text)
        return ("by_fault", parts[1], parts[0], parts[2]), parts[1]
    if parts[0] == "phase":
        if (
            len(parts) < 3
            or parts[1] not in PHASES
            or not _check_flat(".".join(parts[2:]), PHASE_KEYS)
        ):
            raise _unknown(key, text)
        return tuple(parts), None
    if not _check_flat(key, SUMMARY_KEYS):
        raise _unknown(key, text)
    return tuple(parts), None


def parse_clause(text: str) -> Clause:
    match = _CLAUSE.match(text)
    if not match:
        raise HypothesisError(
            f"cannot parse {text!r}: expected '<key> <op> <number>' or '<key> <op> <number> * "
            "<capacity key>', e.g. 'oversell == 0', 'latency_ms.p99 < 1.5 * ideal.drain_ms'"
        )
    key, op, raw, ref = match.groups()
    path, fault = _resolve(key, text)
    try:
        value = float(raw)
    except ValueError:
        raise HypothesisError(f"not a number: {raw!r} in {text!r}") from None
    if ref is not None:
        _check_relative(key, value, raw, ref, text)
    profile = path[2] if path[:2] == ("fairness", "profiles") else None
    return Clause(
        key=key,
        op=op,
        value=value,
        text=text.strip(),
        path=path,
        fault=fault,
        profile=profile,
        ref=ref,
    )


def _check_relative(key: str, factor: float, raw: str, ref: str, text: str) -> None:
    """A relative bound: a known reference, a factor > 0, a time or rate in the reference's unit."""
    refs = list(REFERENCE_UNITS)
    unit = unit_of(key)
    if ref not in REFERENCE_UNITS:
        # The closest reference in the left side's unit first (`ideal.drain` beside a latency
        # means ideal.drain_ms), else the closest of all.
        fitting = [r for r in refs if REFERENCE_UNITS[r] == unit]
        close = difflib.get_close_matches(ref, fitting, n=1, cutoff=0.5)
        close = close or difflib.get_close_matches(ref, refs, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"one of {', '.join(refs)}"
        raise HypothesisError(f"{ref!r} in {text!r} is not a capacity key ({hint})")
    if not factor > 0:
        raise HypothesisError(
            f"factor {raw} in {text!r} must be > 0 (the bound is factor x {ref}, measured per run)"
        )
    if unit is None:
        raise HypothesisError(
            f"{key!r} in {text!r} has no capacity counterpart: a relative bound is for times and "
            "rates (latency_ms.*, throughput_rps, duration_s, sellout_s, recovery.*.*_s, ...); "
            f"write '{key} <op> <number>'"
        )
    want = REFERENCE_UNITS[ref]
    if unit != want:
        same = [r for r in refs if REFERENCE_UNITS[r] == unit]
        close = difflib.get_close_matches(ref, same, n=1, cutoff=0) or same
        raise HypothesisError(
            f"{key!r} is in {UNIT_TEXT[unit]} but {ref!r} in {UNIT_TEXT[want]}, in {text!r} "
            f"(did you mean {close[0]!r}? {UNIT_TEXT[unit]} references: {', '.join(same)})"
        )


def evaluate(clauses: list[str], summary: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    """Each clause measured against the summary: `ok` and a provisional `status` (pass/fail)."""
    results = [parse_clause(c).evaluate(summary) for c in clauses]
    return all(r["ok"] for r in results), results


def distrust(results: list[dict[str, Any]], reasons: list[str]) -> list[dict[str, Any]]:
    """Timing clauses become "inconclusive" (with `reason`) when the measurement is untrusted.

    `reasons` says why the run's timings cannot be trusted (empty: they can). Safety clauses
    are never touched: an oversell is an oversell however slow the client was.
    """
    if not reasons:
        return results
    why = "; ".join(reasons)
    return [
        r | {"status": "inconclusive", "reason": why} if r["class"] == "timing" else r
        for r in results
    ]


def near_threshold_on_unsteady_host(
    results: list[dict[str, Any]], spread: float | None, why: str
) -> list[dict[str, Any]]:
    """Timing clauses whose measured value lies within the host's speed spread of their threshold
    become "inconclusive": on a host whose CPU speed moved during the run, the same system could
    have measured anywhere in [threshold / spread, threshold * spread], so the clause could have
    gone either way. Far from the threshold it is judged as usual.
    `spread` None or <= HOST_SPREAD_STEADY: nothing changes (flashlab.lab.hostspeed measures it).

    Why the spread itself is the band: calibrated on this lab's 2-vCPU host (lua 10k
    spike, fifteen runs over 40 minutes), within-run spreads were 1.42-1.70 and the runs' p99 and
    throughput had CVs of 19% and 17%, about +-35% at two standard deviations - a factor of
    1.4-1.5, the spread's own size. (Its square root fitted ten runs taken in one stretch, not
    the fifteen.) docs/METHOD.md.
    """
    if spread is None or spread <= HOST_SPREAD_STEADY:
        return results
    band = spread

    def near(r: dict[str, Any]) -> bool:
        value, threshold = r.get("measured"), r.get("expected")
        return (
            r["class"] == "timing"
            and r["status"] != "inconclusive"
            and value is not None
            and threshold is not None
            and threshold > 0
            and threshold / band < value < threshold * band
        )

    return [
        r | {"status": "inconclusive", "reason": f"{why}; measured {r['measured']:g} is within "
             f"x{band:.2f} of {r['expected']:g}"} if near(r) else r
        for r in results
    ]  # fmt: skip


def unmeasurable(results: list[dict[str, Any]], unknown: dict[str, str]) -> list[dict[str, Any]]:
    """Clauses on a key nobody could measure become "inconclusive" (with `reason`).

    `unknown` maps a summary key to why it has no value: a check that raised or does not apply,
    a truth that reads no such thing, a capacity the probe did not measure (a relative clause's
    reference counts too). Neither pass nor fail can be claimed from a number nobody measured
    (Jepsen's :unknown).
    """

    def why(r: dict[str, Any]) -> str | None:
        return unknown.get(r["key"]) or unknown.get(str(r.get("ref")))

    return [
        r | {"status": "inconclusive", "reason": reason} if (reason := why(r)) else r
        for r in results
    ]


def overall(statuses: list[str]) -> Verdict:
    """Any "fail" -> "fail"; else any "inconclusive" -> "inconclusive"; else "pass"."""
    if "fail" in statuses:
        return "fail"
    if "inconclusive" in statuses:
        return "inconclusive"
    return "pass"


def reason_line(result: dict[str, Any]) -> str | None:
    """One line for a clause that did not pass, None for one that did."""
    status = result["status"]
    if status == "pass":
        return None
    if status == "inconclusive":
        why = result.get("reason") or "untrusted"
        if result.get("ref") is not None and result.get("expected") is not None:
            why += f" ({sides(result)})"
        return f"clause '{result['clause']}' inconclusive: {why}"
    measured = result.get("measured")
    if result.get("ref") is not None:
        got = "not measured" if measured is None else "does not hold"
        return f"clause '{result['clause']}' failed: {sides(result)} {got}"
    got = "not measured" if measured is None else f"measured {measured:g}"
    return f"clause '{result['clause']}' failed: {got} (expected {result['op']} {result['expected']:g})"


def judge(
    results: list[dict[str, Any]],
    untrusted: list[str],
    unknown: dict[str, str] | None = None,
    host: tuple[float | None, str] = (None, ""),
) -> tuple[list[dict[str, Any]], Verdict, list[str]]:
    """(clause results with final status, verdict, reasons for a non-pass: failures first).

    `unknown`: summary key -> why the check filling it could not run (see `unmeasurable`).
    `host`: (speed spread, why) of the machine during the load (`near_threshold_on_unsteady_host`)."""
    final = distrust(results, untrusted)
    final = unmeasurable(near_threshold_on_unsteady_host(final, *host), unknown or {})
    verdict = overall([r["status"] for r in final])
    lines = [reason_line(r) for r in final if r["status"] == "fail"]
    lines += [reason_line(r) for r in final if r["status"] == "inconclusive"]
    return final, verdict, [line for line in lines if line]
