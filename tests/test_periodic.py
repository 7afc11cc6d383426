"""flashlab.core.periodic.PeriodicThread: ticks until stopped or done, and stops cleanly."""

from __future__ import annotations

import threading

from support import poll

from flashlab.core.periodic import PeriodicThread


def test_it_ticks_until_stopped_and_no_tick_follows_stop() -> None:
    ticks: list[int] = []
    ticker = PeriodicThread("test-ticker", 0.01, lambda: ticks.append(len(ticks))).start()
    poll(lambda: len(ticks) >= 3, "three ticks", timeout_s=10)
    ticker.stop()
    after_stop = len(ticks)
    assert not any(t.name == "test-ticker" for t in threading.enumerate())
    assert len(ticks) == after_stop
    assert ticks[:3] == [0, 1, 2]


def test_done_ends_the_loop_without_another_tick() -> None:
    ticks: list[int] = []
    finished = threading.Event()
    ticker = PeriodicThread(
        "test-done", 0.01, lambda: ticks.append(1), done=finished.is_set
    ).start()
    poll(lambda: ticks, "a first tick", timeout_s=10)
    finished.set()
    poll(
        lambda: not any(t.name == "test-done" for t in threading.enumerate()),
        "the thread to end by itself",
        timeout_s=10,
    )
    count = len(ticks)
    ticker.stop()
    assert len(ticks) == count


def test_stop_before_start_and_twice_is_safe() -> None:
    ticker = PeriodicThread("test-never", 0.01, lambda: None)
    ticker.stop()
    ticker.stop()
    assert not any(t.name == "test-never" for t in threading.enumerate())
