"""ManualClock: time that moves only when the test moves it."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from hare.clock import Clock
from hare.testing import ManualClock

pytestmark = pytest.mark.anyio


def test_starts_where_it_is_told_and_satisfies_clock() -> None:
    clock: Clock = ManualClock(1_700_000_000.0, monotonic_start=50.0)
    assert clock.time() == 1_700_000_000.0
    assert clock.monotonic() == 50.0
    default = ManualClock()
    assert (default.time(), default.monotonic()) == (1_800_000_000.0, 0.0)


def test_advance_moves_both_clocks_exactly() -> None:
    clock = ManualClock()
    for _ in range(3):
        clock.advance(0.1)
    assert clock.monotonic() == 0.3
    assert clock.time() == 1_800_000_000.3
    clock.advance(0)
    assert clock.monotonic() == 0.3


@pytest.mark.parametrize("bad", [-0.001, math.nan])
def test_advance_refuses_to_go_back_or_nowhere(bad: float) -> None:
    with pytest.raises(ValueError):
        ManualClock().advance(bad)


async def test_sleep_returns_only_after_the_clock_passes_its_deadline() -> None:
    clock = ManualClock()
    sleeper = asyncio.create_task(clock.sleep(2))
    await clock.yield_control()
    assert not sleeper.done()
    assert clock.pending == 1
    assert clock.next_deadline() == 2.0

    clock.advance(1.999)
    await clock.yield_control()
    assert not sleeper.done()

    clock.advance(0.001)
    await clock.yield_control()
    assert sleeper.done()
    assert clock.pending == 0
    assert clock.next_deadline() is None


@pytest.mark.parametrize("seconds", [0, -1, 1e-12])
async def test_sleep_of_nothing_only_yields(seconds: float) -> None:
    clock = ManualClock()
    await clock.sleep(seconds)
    assert clock.monotonic() == 0.0
    assert clock.pending == 0


async def test_sleep_refuses_nan() -> None:
    with pytest.raises(ValueError):
        await ManualClock().sleep(math.nan)


async def test_sleeping_forever_ends_only_by_cancellation() -> None:
    clock = ManualClock()
    sleeper = asyncio.create_task(clock.sleep(math.inf))
    await clock.advance_by(1e9)
    assert not sleeper.done()
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper


async def test_advance_wakes_sleepers_in_deadline_order() -> None:
    clock = ManualClock()
    woken: list[str] = []

    async def sleep(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woken.append(name)

    async with asyncio.TaskGroup() as group:
        for name, seconds in [("c", 3), ("a", 1), ("b", 2), ("a2", 1), ("late", 10)]:
            group.create_task(sleep(name, seconds))
        await clock.yield_control()
        clock.advance(5)
        await clock.yield_control()
        assert woken == ["a", "a2", "b", "c"]
        clock.advance(5)
    assert woken[-1] == "late"


async def test_a_cancelled_sleeper_is_not_woken_and_does_not_count() -> None:
    clock = ManualClock()
    sleeper = asyncio.create_task(clock.sleep(1))
    await clock.yield_control()
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert clock.pending == 0
    assert clock.next_deadline() is None
    clock.advance(2)  # nothing to wake, nothing breaks


async def test_advance_by_runs_chains_of_timers_at_their_own_times() -> None:
    clock = ManualClock()
    fired: list[float] = []

    async def tick(times: int) -> None:
        for _ in range(times):
            await clock.sleep(1)
            fired.append(clock.monotonic())

    task = asyncio.create_task(tick(5))
    await clock.advance_by(3.5)
    # Each wake-up saw the clock at its own deadline, not at the end of the jump.
    assert fired == [1.0, 2.0, 3.0]
    assert clock.monotonic() == 3.5
    await clock.advance_by(10)
    assert fired == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert task.done()


async def test_advance_by_stops_at_its_target() -> None:
    clock = ManualClock()
    sleeper = asyncio.create_task(clock.sleep(1.000001))
    await clock.advance_by(1)
    assert not sleeper.done()
    await clock.advance_by(0.000001)
    assert sleeper.done()


async def test_a_wait_computed_from_epoch_times_lands_on_its_deadline() -> None:
    """`due - clock.time()` with epoch floats is off by a few hundred nanoseconds; the clock
    works in microseconds, so the sleep still ends within the advance that reaches `due`."""
    clock = ManualClock()
    due = clock.time() + 0.2
    await clock.advance_by(0.1)
    wait = due - clock.time()
    assert wait > 0.1  # 0.10000014...: epoch floats near 1.8e9 are that coarse
    sleeper = asyncio.create_task(clock.sleep(wait))
    await clock.advance_by(0.1)
    assert sleeper.done()


async def test_advance_by_refuses_to_go_back() -> None:
    with pytest.raises(ValueError):
        await ManualClock().advance_by(-1)


async def test_no_real_time_passes() -> None:
    clock = ManualClock()
    started = time.monotonic()
    sleepers = [asyncio.create_task(clock.sleep(86_400 * days)) for days in (1, 365, 3650)]
    await clock.advance_by(86_400 * 3650)
    assert all(s.done() for s in sleepers)
    assert time.monotonic() - started < 5
