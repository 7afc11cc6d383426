"""Seeded schedules: determinism, counts and windows per arrival kind, the closed model, partitions."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from flashlab.simulator.scenario import Arrival
from flashlab.simulator.scenario import Poisson
from flashlab.simulator.scenario import Profile
from flashlab.simulator.scenario import Ramp
from flashlab.simulator.scenario import Scenario
from flashlab.simulator.scenario import Spike
from flashlab.simulator.scenario import Stage
from flashlab.simulator.scenario import Waves
from flashlab.simulator.schedule import partition
from flashlab.simulator.schedule import plan
from flashlab.simulator.schedule import vu_plan


def _key(shoppers: list) -> list[tuple]:
    return [(s.shopper, s.user_id, s.profile, s.arrival_s, s.rng_seed, s.vu) for s in shoppers]


# Every registered arrival kind (the Arrival union), with its default parameters.
ARRIVAL_KINDS = typing.get_args(typing.get_args(Arrival)[0])


@pytest.mark.parametrize("arrival_cls", ARRIVAL_KINDS, ids=lambda cls: cls.__name__)
def test_every_arrival_kind_gives_n_sorted_nonnegative_offsets(arrival_cls) -> None:
    arrival = arrival_cls()
    offsets = arrival.offsets(1_000, np.random.Generator(np.random.PCG64(5)))
    again = arrival.offsets(1_000, np.random.Generator(np.random.PCG64(5)))
    assert len(offsets) == 1_000 and np.array_equal(offsets, again)
    assert offsets[0] >= 0 and bool(np.all(np.diff(offsets) >= 0))


@pytest.mark.parametrize(
    "arrival", [Spike(window_s=1.0), Ramp(duration_s=4.0), Waves(), Poisson(rate_per_s=500)]
)
def test_same_seed_same_schedule_any_worker_count(arrival) -> None:
    sc = Scenario(shoppers=2_000, arrival=arrival, duration_s=60)
    a, b = plan(sc, 42), plan(sc, 42)
    assert _key(a) == _key(b)
    for workers in (1, 2, 3, 7):
        parts = partition(a, workers)
        merged = sorted((s for p in parts for s in p), key=lambda s: s.shopper)
        assert _key(merged) == _key(a)
        assert all(s.shopper % workers == i for i, p in enumerate(parts) for s in p)
    assert _key(plan(sc, 43)) != _key(a)


def test_spike_counts_window_order_and_ids() -> None:
    sc = Scenario(shoppers=10_000, arrival=Spike(window_s=0.5))
    shoppers = plan(sc, 1)
    arrivals = np.array([s.arrival_s for s in shoppers])
    assert len(shoppers) == 10_000
    assert arrivals.min() >= 0 and arrivals.max() < 0.5
    assert np.all(np.diff(arrivals) >= 0)  # shopper = arrival rank
    assert [s.shopper for s in shoppers] == list(range(10_000))
    assert len({s.user_id for s in shoppers}) == 10_000
    assert shoppers[5].user_id == "u-1-5"


def test_ramp_rate_rises_linearly() -> None:
    sc = Scenario(shoppers=20_000, arrival=Ramp(duration_s=10.0))
    arrivals = np.array([s.arrival_s for s in plan(sc, 3)])
    assert arrivals.max() < 10.0
    # CDF (t/D)^2: a quarter arrive in the first half, three quarters in the second.
    first_half = (arrivals < 5.0).mean()
    assert 0.23 < first_half < 0.27


def test_waves_fall_inside_their_windows() -> None:
    sc = Scenario(shoppers=3_000, arrival=Waves(count=3, period_s=2.0, width_s=0.2))
    arrivals = np.array([s.arrival_s for s in plan(sc, 5)])
    offset = np.mod(arrivals, 2.0)
    assert np.all(offset < 0.2)
    assert sorted(np.bincount((arrivals // 2.0).astype(int)).tolist()) == [1_000, 1_000, 1_000]


def test_poisson_rate_and_duration_cap() -> None:
    sc = Scenario(shoppers=5_000, arrival=Poisson(rate_per_s=1_000), duration_s=2.0)
    shoppers = plan(sc, 9)
    # ~2,000 arrive before the 2 s cap; the rest are dropped (they would never be launched).
    assert 1_850 < len(shoppers) < 2_150
    assert max(s.arrival_s for s in shoppers) < 2.0


def test_profiles_drawn_by_weight() -> None:
    profiles = [Profile(name="a", weight=3), Profile(name="b", weight=1)]
    shoppers = plan(Scenario(shoppers=8_000, profiles=profiles), 11)
    share_a = sum(s.profile == "a" for s in shoppers) / len(shoppers)
    assert 0.72 < share_a < 0.78


def test_closed_model_is_bounded_and_follows_stages() -> None:
    stages = [
        Stage(duration_s=2, target=10),
        Stage(duration_s=2, target=10),
        Stage(duration_s=2, target=0),
    ]
    sc = Scenario(shoppers=500, model="closed", stages=stages, duration_s=5.0)
    vus = vu_plan(sc, 1)
    assert len(vus) == 10
    for v in vus:
        ((start, stop),) = v.intervals
        assert start == pytest.approx(2 * (v.vu + 1) / 10)  # ramp-up: VU v starts at target v+1
        assert stop <= 5.0  # capped by duration_s
    shoppers = plan(sc, 1)
    assert sorted(s.shopper for s in shoppers) == list(range(500))
    assert all(s.shopper % 10 == s.vu for s in shoppers)
    assert _key(shoppers) == _key(plan(sc, 1))
    parts = partition(shoppers, 3)
    assert all(s.vu % 3 == i for i, p in enumerate(parts) for s in p)


def test_closed_model_needs_stages() -> None:
    with pytest.raises(ValueError, match="stages"):
        Scenario(model="closed")
