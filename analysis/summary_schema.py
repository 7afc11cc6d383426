"""The typed shape of summary.json (the output contract readers and CI tools rely on).

`SummaryModel` types every top-level key; large nested parts (recovery, reconciliation,
timeseries, fairness deciles) are typed loosely. Extra keys are allowed, so a newer lab's summary
still loads in an older reader; removing or retyping a key is a contract change: bump
`flashlab.core.rundir.SCHEMA_VERSION` and regenerate flashlab/schemas/ (`flashlab schema
summary --write`). `read_summary` is how the analysis layer reads a summary.json file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import create_model

from flashlab.core.rundir import SCHEMA_VERSION
from flashlab.core.rundir import RunDirError
from flashlab.core.rundir import read_json
from flashlab.core.validation import first_error

Verdict = Literal["pass", "fail", "inconclusive"]


class _Open(BaseModel):
    """A part of summary.json: typed keys, extra keys allowed (forward compatible)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# The one home of the latency percentiles: key -> the percentile it is (numpy's linear
# interpolation, flashlab.analysis.stats), then `max`. Clause keys, report columns and the
# summary's model all come from here.
PERCENTILES: dict[str, float] = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p999": 99.9}
PERCENTILE_KEYS: tuple[str, ...] = (*PERCENTILES, "max")

# One latency distribution (ms): every key the same kind of number, None when nothing was measured.
Percentiles = create_model(
    "Percentiles",
    __base__=_Open,
    __module__=__name__,
    **{key: (float | None, None) for key in PERCENTILE_KEYS},  # type: ignore[call-overload]
)


class ClauseResult(_Open):
    """One hypothesis clause, e.g. `latency_ms.p99 < 800`, as judged."""

    clause: str
    key: str
    op: str
    expected: float | None = Field(
        description="The bound; for a relative clause factor x ref_value (None: ref not measured)."
    )
    measured: float | None = None
    ok: bool
    factor: float | None = Field(
        default=None, description="A relative clause's factor (`<key> < factor * ref`)."
    )
    ref: str | None = Field(
        default=None, description="A relative clause's reference, e.g. ideal.drain_ms."
    )
    ref_value: float | None = Field(
        default=None, description="The reference as this run measured it."
    )
    ratio: float | None = Field(
        default=None, description="measured / ref_value (relative clauses)."
    )
    status: Literal["pass", "fail", "inconclusive"] | None = Field(
        default=None, description="Three-valued result; absent in summaries before it existed."
    )
    clause_class: Literal["safety", "timing"] | None = Field(default=None, alias="class")
    reason: str | None = None


class CheckSummary(_Open):
    """One consistency check (flashlab.analysis.checks): count and example ids; ok/count are
    None when the check could not run (unknown; `detail` says why)."""

    ok: bool | None
    count: int | None
    examples: list[str] = Field(default_factory=list)
    detail: str = ""
    figures: dict[str, float | int | None] | None = Field(
        default=None, description="Further numbers the check measured (e.g. undersold: gave_up)."
    )
    na: str | None = Field(
        default=None,
        description="Set when the check does not apply to this backend: the facts it needs "
        "(flashlab.core.facts); ok and count are then None.",
    )


class GeneratorHealth(_Open):
    lag_ms_p99: float | None = None
    lag_ms_max: float | None = None
    stalled_s: float | None = None
    cpu_pct_max: float | None = None
    healthy: bool | None = None


class Fairness(_Open):
    rank_correlation: float | None = None
    early_half_win_share: float | None = None
    winners: int | None = None
    deciles: list[dict[str, Any]] = Field(default_factory=list)
    fcfs_inversions: int | None = None
    fcfs_pairs: int | None = None
    fcfs_inversion_rate: float | None = None
    fcfs_patience: str | None = None
    profiles: dict[str, dict[str, Any]] | None = Field(
        default=None, description="Per profile: shoppers, units and their shares."
    )


class Isolation(_Open):
    """CPU split between stack and load generator (manifest.isolation, copied)."""

    mode: Literal["auto", "off", "manual"]
    requested: bool
    applied: bool
    stack_cpus: list[int] = Field(default_factory=list)
    load_cpus: list[int] = Field(default_factory=list)
    reason: str | None = None


class HostSpeedSide(_Open):
    """One side's CPU-speed probe over the load window (flashlab.lab.hostspeed)."""

    cpus: list[int] | None = None
    samples: int
    median_us: float | None = None
    p10_us: float | None = None
    p90_us: float | None = None
    spread: float | None = Field(
        default=None, description="p90/p10 of the probe's fixed-work time: 1.0 is a steady host."
    )


class Capacity(_Open):
    """The machine's capacity, probed before the load (flashlab.analysis.capacity): None = not
    measured, `reason` (and `missing`, per number) says why."""

    available: bool
    reason: str | None = None
    gateway_rps: float | None = Field(default=None, description="GET /healthz through nginx.")
    buy_rps: float | None = Field(default=None, description="Purchases/s on a scratch product.")
    buy_p50_ms: float | None = Field(default=None, description="Median purchase answer.")
    wrk_buy_rps: float | None = Field(default=None, description="The purchase path driven by wrk.")
    duration_s: float | None = Field(default=None, description="The probe's own duration.")
    connections: int | None = None


class Ideal(_Open):
    """The least times the measured capacity allows: shoppers or stock / capacity.buy_rps."""

    drain_s: float | None = None
    drain_ms: float | None = None
    sellout_s: float | None = None


class Aborted(_Open):
    """A run stopped early by a guard or Ctrl-C (manifest.aborted, copied)."""

    by: Literal["guard", "interrupt"]
    guard: str | None = None
    t_s: float
    reason: str


class SummaryModel(_Open):
    """summary.json of one run directory."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, title="flashlab summary.json")

    schema_version: int = Field(description="Output contract version (SCHEMA_VERSION).")
    run_id: str
    verdict: Verdict
    verdict_reasons: list[str] | None = Field(
        default=None, description="One line per reason the verdict is not a pass."
    )
    hypothesis: list[ClauseResult]
    failed_checks: list[str]
    unknown_checks: list[str] | None = Field(
        default=None, description="Checks that raised: their clauses are inconclusive."
    )
    na_checks: dict[str, str] | None = Field(
        default=None,
        description="Checks that do not apply to this backend, with the facts each needs: "
        "their clauses are inconclusive.",
    )
    checks: dict[str, CheckSummary]
    # The checks' counts (flashlab.analysis.checks; None when the check could not run).
    oversell: int | None
    negative_stock: int | None
    lost_acknowledged: int | None
    duplicate_purchases: int | None
    phantom_orders: int | None
    conservation_errors: int | None
    undersold: int | None = None
    gave_up: int | None = None
    premature_sold_out: int | None = None
    sold: int | None = Field(description="Units sold per the truth's order log (None: not read).")
    acknowledged: int | None = Field(default=None, description="Purchases answered `ok`.")
    stock_initial: int
    stock_remaining: int | None = Field(description="Stock left per the truth (None: not read).")
    strategy: str
    shoppers: int
    attempts: int
    success_rate: float | None = None
    conflict_rate: float | None = None
    error_rate: float | None = None
    indeterminate_rate: float | None = None
    availability: float | None = None
    server_error_rate: float | None = None
    unknown_rate: float | None = Field(
        default=None, description="Answers no rule of a target file matched / attempts."
    )
    latency_ms: Percentiles
    service_latency_ms: Percentiles
    latency_ok_ms: Percentiles | None = None
    service_latency_ok_ms: Percentiles | None = None
    duration_s: float | None = None
    throughput_rps: float | None = None
    sellout_s: float | None = None
    sellout_first_answer_s: float | None = None
    fairness: Fairness
    codes: dict[str, int]
    recovery: list[dict[str, Any]] = Field(description="Per injected fault; see docs/CHAOS.md.")
    by_fault: dict[str, Any] | None = Field(
        default=None,
        description="Per fault name: worst recovery and window figures (recovery.X / window.X clauses).",
    )
    phase: dict[str, Any] | None = Field(
        default=None,
        description="Figures per phase of the load: before_faults, during_faults, after_faults.",
    )
    reconciliation: dict[str, Any]
    timeseries: dict[str, Any]
    generator: GeneratorHealth
    generator_lag_ms_p99: float | None = None
    generator_stalled_s: float | None = None
    isolation: Isolation | None = None
    host_speed: dict[str, HostSpeedSide] | None = Field(
        default=None,
        description="Per side of the CPU split (stack, load; or host when not split).",
    )
    capacity: Capacity | None = Field(
        default=None, description="The machine's capacity, probed before the load."
    )
    ideal: Ideal | None = None
    relative: dict[str, float | None] | None = Field(
        default=None,
        description="Timing over capacity: p99_over_drain, throughput_over_buy, sellout_over_ideal.",
    )
    aborted: Aborted | None = None
    steady_state: dict[str, Any] | None = Field(
        default=None, description="Steady-state checks before the first fault and after the load."
    )
    guards: list[dict[str, Any]] | None = Field(
        default=None, description="Live abort guards and whether each tripped."
    )


def summary_json_schema() -> dict[str, Any]:
    """The JSON Schema of summary.json, as shipped in flashlab/schemas/summary.json."""
    schema = SummaryModel.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["x-schema-version"] = SCHEMA_VERSION
    return schema


def _validation_line(path: Path, exc: ValidationError) -> str:
    line = first_error(exc, count_more=True)
    return f"{path}: {line} (`flashlab check` rewrites it from the evidence)"


def read_summary(path: Path) -> dict[str, Any]:
    """summary.json as a dict, checked against SummaryModel; RunDirError naming file and field."""
    data = read_json(path)
    try:
        SummaryModel.model_validate(data)
    except ValidationError as exc:
        raise RunDirError(_validation_line(path, exc)) from None
    return data
