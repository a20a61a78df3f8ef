"""Soft and hard time limits, async and sync, driven by a manual clock."""

from __future__ import annotations

import threading

import pytest

from hare import Hare
from hare.core.envelope import Delivery
from hare.errors import ConfigurationError, SoftTimeLimitExceeded
from hare.testing import Ledger, ManualClock, memory_app, running_worker

pytestmark = pytest.mark.anyio


async def dead_letters(app: Hare, clock: ManualClock, n: int) -> list[Delivery]:
    transport = (await app.publisher()).transport
    got: list[Delivery] = []
    for _ in range(100):
        while (delivery := await transport.get("work.dead")) is not None:
            await transport.ack(delivery)
            got.append(delivery)
        if len(got) >= n:
            return got
        await clock.yield_control()
    raise AssertionError(f"expected {n} dead letters, got {len(got)}")


async def test_async_soft_limit_is_raised_inside_the_task() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.slow", soft_time_limit=5)
    async def slow() -> None:
        try:
            await clock.sleep(100)
        except SoftTimeLimitExceeded:
            ledger.record("cleaned up", clock.monotonic())
            return
        ledger.record("finished")

    async with running_worker(app):
        start = clock.monotonic()
        await slow.adelay()
        await clock.advance_by(4.9)
        assert ledger.runs == []
        await clock.advance_by(0.2)
        await ledger.wait_for(1)
        transport = (await app.publisher()).transport
        assert await transport.message_count("work.dead") == 0  # it handled it: success
    assert [(k, round(t - start, 3)) for k, t in ledger.runs] == [("cleaned up", 5.0)]


async def test_async_hard_limit_cancels_a_task_that_ignores_the_soft_one() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.stubborn", soft_time_limit=1, time_limit=3)
    async def stubborn() -> None:
        try:
            await clock.sleep(100)
        except SoftTimeLimitExceeded:
            ledger.record("soft")
        await clock.sleep(100)  # ignores it and keeps going
        ledger.record("finished")

    async with running_worker(app):
        await stubborn.adelay()
        await clock.advance_by(3.1)
        dead = await dead_letters(app, clock, 1)
    headers = dead[0].properties.headers
    assert headers["hare-dead-reason"] == "failed"
    assert headers["hare-dead-exception"] == "hare.errors.TimeLimitExceeded"
    assert ledger.counts() == {"soft": 1}


async def test_a_call_overrides_the_task_limits() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.limited", soft_time_limit=50)
    async def limited() -> None:
        try:
            await clock.sleep(100)
        except SoftTimeLimitExceeded:
            ledger.record("soft", clock.monotonic())

    async with running_worker(app):
        start = clock.monotonic()
        await limited.aapply_async(soft_time_limit=2)
        await clock.advance_by(2.1)
        await ledger.wait_for(1)
    assert [round(t - start, 3) for _, t in ledger.runs] == [2.0]


def busy_until(stop: threading.Event) -> int:
    """Python bytecode in a loop (where an asynchronous exception can land), until `stop`."""
    n = 0
    while not stop.is_set() and n < 10**9:
        n += 1
    return n


async def test_sync_soft_limit_is_raised_in_the_thread() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()
    never = threading.Event()

    @app.task(name="t.crunch", soft_time_limit=5)
    def crunch() -> None:
        try:
            busy_until(never)
        except SoftTimeLimitExceeded:
            ledger.record("cleaned up")

    async with running_worker(app):
        await crunch.adelay()
        await clock.advance_by(5.1)
        await ledger.wait_for(1)
    assert ledger.runs == [("cleaned up", None)]


async def test_sync_hard_limit_discards_the_result_and_counts_the_busy_thread() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()
    release = threading.Event()

    @app.task(name="t.deaf", soft_time_limit=1, time_limit=2)
    def deaf() -> str:
        while not release.is_set():
            try:
                busy_until(release)
            except SoftTimeLimitExceeded:
                ledger.record("soft")
        ledger.record("returned")
        return "too late"

    async with running_worker(app) as worker:
        await deaf.adelay()
        await clock.advance_by(1.1)
        await ledger.wait_for(1)
        await clock.advance_by(1.0)
        dead = await dead_letters(app, clock, 1)
        assert worker.busy_threads == 1  # the thread cannot be killed: it is accounted for
        release.set()
        await ledger.wait_for(2)
    assert dead[0].properties.headers["hare-dead-exception"] == "hare.errors.TimeLimitExceeded"
    assert "discarded" in dead[0].properties.headers["hare-dead-detail"]
    assert ledger.counts() == {"soft": 1, "returned": 1}


def test_limits_must_be_positive() -> None:
    app = memory_app(ManualClock())
    with pytest.raises(ConfigurationError, match="time_limit must be a positive number"):

        @app.task(name="t.bad", time_limit=0)
        def bad() -> None: ...
