"""Priority bands on the memory transport: where a prioritised message goes, and which waiting
delivery a freed concurrency slot goes to."""

from __future__ import annotations

import asyncio

import pytest

from hare import Retry
from hare.context import current
from hare.core.priority import prefetch
from hare.testing import Ledger, ManualClock, memory_app, running_worker, until
from hare.transport.memory.transport import MemoryTransport
from hare.worker.admission import FAIR_SHARE, Slots

pytestmark = pytest.mark.anyio


async def test_a_high_priority_message_goes_to_the_queue_s_high_band() -> None:
    app = memory_app(ManualClock())

    @app.task(name="t.x", queue="q")
    async def x() -> None: ...

    await x.aapply_async(priority=7)
    await x.aapply_async(priority=4)
    await x.adelay()
    transport = await app.publisher()
    broker = transport.transport
    assert isinstance(broker, MemoryTransport)
    assert broker.broker.message_count("q") == 2
    assert broker.broker.message_count("q.high") == 1
    got = await broker.get("q.high")
    assert got is not None and got.properties.priority == 7  # the property, as Celery sets it
    await app.aclose()


async def test_the_task_s_priority_is_the_default_and_a_call_s_wins() -> None:
    app = memory_app(ManualClock(), default_priority=2)

    @app.task(name="t.urgent", queue="q", priority=8)
    async def urgent() -> None: ...

    @app.task(name="t.plain", queue="q")
    async def plain() -> None: ...

    await urgent.adelay()
    await urgent.aapply_async(priority=1)
    await plain.adelay()
    publisher = await app.publisher()
    broker = publisher.transport
    assert isinstance(broker, MemoryTransport)
    high, low = broker.broker.message_count("q.high"), broker.broker.message_count("q")
    assert (high, low) == (1, 2)
    priorities = []
    while (got := await broker.get("q")) is not None:
        priorities.append(got.properties.priority)
    assert priorities == [1, 2]  # the call's, then the app's default
    await app.aclose()


async def test_without_bands_the_message_stays_in_its_queue_with_its_property() -> None:
    app = memory_app(ManualClock(), priority_bands=False)

    @app.task(name="t.x", queue="q")
    async def x() -> None: ...

    await x.aapply_async(priority=9)
    publisher = await app.publisher()
    broker = publisher.transport
    assert isinstance(broker, MemoryTransport)
    assert broker.broker.message_count("q") == 1
    got = await broker.get("q")
    assert got is not None and got.properties.priority == 9
    await app.aclose()


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_high_delivery_takes_the_next_free_slot_before_the_low_backlog(
    concurrency: int,
) -> None:
    clock = ManualClock()
    app = memory_app(clock)
    ledger = Ledger()
    gates: dict[int, asyncio.Event] = {}

    @app.task(name="t.work", queue="q")
    async def work(n: int) -> None:
        ledger.record("start", n)
        gate = gates.setdefault(n, asyncio.Event())
        await gate.wait()

    ledger.bind()
    for n in range(50):
        await work.adelay(n)
    async with running_worker(app, queues=["q"], concurrency=concurrency):
        await until(lambda: len(ledger.runs) == concurrency, clock)
        await work.aapply_async((1000,), priority=9)  # published after the 50 low ones
        await until(lambda: len(ledger.runs) == concurrency, clock)  # every slot is busy
        gates.setdefault(0, asyncio.Event()).set()  # the first low one ends
        await until(lambda: len(ledger.runs) == concurrency + 1, clock)
        assert ledger.runs[concurrency] == ("start", 1000)
        for n in [*range(50), 1000]:
            gates.setdefault(n, asyncio.Event()).set()
        await until(lambda: len(ledger.runs) == 51, clock, rounds=2000)
    started = [n for _, n in ledger.runs]
    assert sorted(started) == [*range(50), 1000]  # each once
    assert [n for n in started if n != 1000] == list(range(50))  # FIFO within the band
    await app.aclose()


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_a_backlog_in_the_high_band_runs_before_the_low_one(concurrency: int) -> None:
    """A high task that ends frees its slot before the broker's next high delivery arrives
    (it comes after the ack): the high band's own deliveries already waiting in the worker
    (its prefetch is twice the concurrency) take the slot, not the low band's."""
    clock = ManualClock()
    app = memory_app(clock)
    ledger = Ledger()

    @app.task(name="t.work", queue="q")
    async def work(kind: str) -> None:
        ledger.record(kind)
        await clock.sleep(1)  # a task that takes longer than a delivery to arrive

    ledger.bind()
    for _ in range(30):
        await work.adelay("low")
    for _ in range(20):
        await work.aapply_async(("high",), priority=5)
    async with running_worker(app, queues=["q"], concurrency=concurrency) as worker:
        while len(ledger.runs) < 50 or worker.in_flight:
            await clock.advance_by(1)
    kinds = [kind for kind, _ in ledger.runs]
    # The low band's first deliveries took the free slots before the high band's arrived;
    # then the high backlog ran, leaving the low band one slot in FAIR_SHARE (admission).
    last_high = max(i for i, kind in enumerate(kinds) if kind == "high")
    assert kinds[:concurrency] == ["low"] * concurrency
    assert kinds[:last_high].count("low") <= concurrency + -(-20 // (FAIR_SHARE - 1))
    await app.aclose()


async def test_a_retried_high_task_comes_back_in_the_high_band() -> None:
    clock = ManualClock()
    app = memory_app(clock)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.flaky", queue="q", max_retries=3)
    async def flaky() -> None:
        context = current()
        assert context is not None
        ledger.record(str(context.queue), context.delivery_info.get("priority"))
        if len(ledger.runs) < 3:
            raise Retry(countdown=10)

    async with running_worker(app, queues=["q"]):
        await flaky.aapply_async(priority=6)
        await ledger.wait_for(1)
        for n in (2, 3):
            await clock.advance_by(10)
            await ledger.wait_for(n)
    assert ledger.runs == [("q.high", 6)] * 3
    await app.aclose()


async def test_slots_go_to_the_highest_rank_first_then_in_arrival_order() -> None:
    slots = Slots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, rank: int, wait: asyncio.Event | None = None) -> None:
        await slots.acquire(rank)
        try:
            order.append(name)
            if wait is not None:
                await wait.wait()
        finally:
            slots.release()

    first = asyncio.create_task(hold("low0", 0, release))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(hold(name, rank))
        for name, rank in [("low1", 0), ("high1", 1), ("low2", 0), ("high2", 1)]
    ]
    cancelled = asyncio.create_task(hold("high-cancelled", 1))
    for _ in range(3):
        await asyncio.sleep(0)
    assert slots.waiting == 5
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["low0", "high1", "high2", "low1", "low2"]
    assert slots.waiting == 0


async def test_a_high_backlog_leaves_one_slot_in_fair_share_to_the_low_band() -> None:
    """Strict ranks would hold a low delivery unacked for the whole high backlog, past
    RabbitMQ's consumer_timeout: one slot in FAIR_SHARE goes to the low band."""
    slots = Slots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, rank: int, wait: asyncio.Event | None = None) -> None:
        await slots.acquire(rank)
        try:
            order.append(name)
            if wait is not None:
                await wait.wait()
        finally:
            slots.release()

    first = asyncio.create_task(hold("first", 0, release))
    await asyncio.sleep(0)
    lows = [asyncio.create_task(hold(f"low{n}", 0)) for n in range(2)]
    highs = [asyncio.create_task(hold(f"high{n}", 1)) for n in range(25)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *lows, *highs)
    share = FAIR_SHARE
    assert order[1:share] == [f"high{n}" for n in range(share - 1)]
    assert order[share] == "low0"
    assert order[share + 1 : 2 * share] == [f"high{n}" for n in range(share - 1, 2 * share - 2)]
    assert order[2 * share] == "low1"
    assert order[2 * share + 1 :] == [f"high{n}" for n in range(2 * share - 2, 25)]


async def test_a_slot_granted_to_a_waiter_cancelled_meanwhile_passes_on() -> None:
    slots = Slots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, wait: asyncio.Event | None = None) -> None:
        await slots.acquire(0)
        try:
            order.append(name)
            if wait is not None:
                await wait.wait()
        finally:
            slots.release()

    first = asyncio.create_task(hold("a", release))
    await asyncio.sleep(0)
    granted = asyncio.create_task(hold("b"))
    after = asyncio.create_task(hold("c"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # "a" ends: the slot is granted to "b", which has not resumed yet
    granted.cancel()
    await asyncio.gather(first, granted, after, return_exceptions=True)
    assert order == ["a", "c"]


def test_a_high_band_holds_twice_the_concurrency() -> None:
    assert (prefetch("q", 8, True), prefetch("q.high", 8, True)) == (8, 16)
    assert prefetch("q.high", 8, False) == 8
