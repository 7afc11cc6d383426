"""Seeded schedules: a Scenario and a seed in, concrete shoppers out, split across engine workers.

Each shopper is who, which profile and when.

Everything here is a pure function of (scenario, seed): the same seed gives the same shoppers, the
same profiles and the same arrival times whichever engine runs them and however many workers it
uses. Randomness comes from one numpy Generator(PCG64(seed)); each shopper also gets its own
`rng_seed` so its behaviour (think time, jitter) does not depend on what other shoppers did.

Open model: arrival times are fixed up front; shopper = arrival rank (0 arrives first).
Closed model: k6-style stages give each virtual user (VU) one or more active intervals; each
iteration of a VU is a new shopper. Shopper ids are interleaved by VU (VU v runs shoppers
v, v+V, v+2V, ... below `scenario.shoppers`), so the set of shoppers and their profiles is fixed
up front, while their start times follow the responses (that is what a closed model means).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from flashlab.simulator.scenario import Scenario
from flashlab.simulator.scenario import Stage

_SEED_BITS = 2**62  # per-shopper seeds stay well inside int64 (Arrow, pickle, random.Random)


@dataclass(frozen=True, slots=True)
class ShopperPlan:
    shopper: int  # open model: arrival rank; closed model: interleaved VU iteration id
    user_id: str
    profile: str
    arrival_s: float  # open: scheduled arrival after t0; closed: earliest possible start
    rng_seed: int
    vu: int = -1  # closed model: the VU that runs this shopper; -1 in the open model


@dataclass(frozen=True, slots=True)
class VuPlan:
    """Closed model: one virtual user, its active intervals (seconds after t0) and its shoppers."""

    vu: int
    intervals: tuple[tuple[float, float], ...]
    shoppers: tuple[int, ...]
    rng_seed: int


def user_id(seed: int, shopper: int) -> str:
    """Stable, contract-valid user id (flashlab.core.contract.ID_PATTERN)."""
    return f"u-{seed}-{shopper}"


def arrival_offsets(scenario: Scenario, rng: np.random.Generator) -> np.ndarray:
    """Sorted arrival offsets (s) for `scenario.shoppers`, before the duration cap is applied."""
    return scenario.arrival.offsets(scenario.shoppers, rng)


def _profiles(scenario: Scenario, n: int, rng: np.random.Generator) -> list[str]:
    weights = np.array([p.weight for p in scenario.profiles], dtype=float)
    picks = rng.choice(len(weights), size=n, p=weights / weights.sum())
    names = [p.name for p in scenario.profiles]
    return [names[i] for i in picks]


def plan(scenario: Scenario, seed: int) -> list[ShopperPlan]:
    """All shoppers of a run, sorted by shopper id (= arrival order in the open model).

    Open-model arrivals at or beyond `duration_s` are dropped: the load stops there anyway.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    if scenario.model == "closed":
        every = [s for vu in vu_plan(scenario, seed) for s in _vu_shoppers(scenario, seed, vu)]
        return sorted(every, key=lambda s: s.shopper)
    offsets = arrival_offsets(scenario, rng)
    profiles = _profiles(scenario, len(offsets), rng)
    seeds = rng.integers(0, _SEED_BITS, size=len(offsets))
    return [
        ShopperPlan(i, user_id(seed, i), profiles[i], float(offsets[i]), int(seeds[i]))
        for i in range(len(offsets))
        if offsets[i] < scenario.duration_s
    ]


# ---- closed model ------------------------------------------------------------------------------


def _target_at(stages: list[Stage], t: float) -> float:
    """k6 semantics: the VU target moves linearly from the previous stage's target (0 at start)."""
    start, prev = 0.0, 0.0
    for st in stages:
        if t <= start + st.duration_s:
            return prev + (st.target - prev) * (t - start) / st.duration_s
        start, prev = start + st.duration_s, float(st.target)
    return prev


def _vu_intervals(stages: list[Stage], vu: int, end_s: float) -> tuple[tuple[float, float], ...]:
    """Intervals in which VU `vu` (0-based) is active, i.e. target(t) >= vu + 1.

    Found on the stage breakpoints plus the exact crossing points, so no sampling error.
    """
    level = vu + 1
    points = [0.0]
    start, prev = 0.0, 0.0
    for st in stages:
        lo, hi = sorted((prev, float(st.target)))
        if lo < level <= hi and st.target != prev:
            points.append(start + st.duration_s * (level - prev) / (st.target - prev))
        start, prev = start + st.duration_s, float(st.target)
        points.append(start)
    points = sorted({min(p, end_s) for p in [*points, end_s]})
    out: list[list[float]] = []
    for a, b in itertools.pairwise(points):
        if b > a and _target_at(stages, (a + b) / 2) >= level - 1e-9:
            if out and abs(out[-1][1] - a) < 1e-9:
                out[-1][1] = b
            else:
                out.append([a, b])
    return tuple((a, b) for a, b in out)


def vu_plan(scenario: Scenario, seed: int) -> list[VuPlan]:
    """Closed model: every VU with its active intervals (capped at duration_s) and its shoppers."""
    if scenario.model != "closed":
        return []
    total = sum(st.duration_s for st in scenario.stages)
    end_s = min(total, scenario.duration_s)
    n_vus = min(max(st.target for st in scenario.stages), scenario.shoppers)
    rng = np.random.Generator(np.random.PCG64([seed, 1]))  # separate stream from the open model
    seeds = rng.integers(0, _SEED_BITS, size=n_vus)
    vus = []
    for v in range(n_vus):
        intervals = _vu_intervals(scenario.stages, v, end_s)
        if intervals:
            ids = tuple(range(v, scenario.shoppers, n_vus))
            vus.append(VuPlan(v, intervals, ids, int(seeds[v])))
    return vus


def _vu_shoppers(scenario: Scenario, seed: int, vu: VuPlan) -> list[ShopperPlan]:
    rng = np.random.Generator(np.random.PCG64([seed, 2, vu.vu]))
    profiles = _profiles(scenario, len(vu.shoppers), rng)
    seeds = rng.integers(0, _SEED_BITS, size=len(vu.shoppers))
    first = vu.intervals[0][0]
    return [
        ShopperPlan(s, user_id(seed, s), profiles[k], first, int(seeds[k]), vu.vu)
        for k, s in enumerate(vu.shoppers)
    ]


# ---- partitioning across engine workers --------------------------------------------------------


def partition(shoppers: list[ShopperPlan], workers: int) -> list[list[ShopperPlan]]:
    """Round-robin by rank (open) or by VU (closed): the union is the same for any worker count."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    parts: list[list[ShopperPlan]] = [[] for _ in range(workers)]
    for s in shoppers:
        key = s.vu if s.vu >= 0 else s.shopper
        parts[key % workers].append(s)
    for p in parts:
        p.sort(key=lambda s: (s.arrival_s, s.shopper))
    return parts


def partition_vus(vus: list[VuPlan], workers: int) -> list[list[VuPlan]]:
    parts: list[list[VuPlan]] = [[] for _ in range(workers)]
    for v in vus:
        parts[v.vu % workers].append(v)
    return parts
