"""Graceful drain on the memory transport with a manual clock: nothing lost, nothing re-run."""

from __future__ import annotations

import asyncio

import pytest

from hare import Hare, Worker
from hare.testing import Ledger, ManualClock, memory_app
from hare.transport.base import Transport

pytestmark = pytest.mark.anyio


async def start(app: Hare, **options: object) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker(app, **options)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    await worker.wait_ready()
    return worker, task


async def transport_of(app: Hare) -> Transport:
    return (await app.publisher()).transport


async def test_running_tasks_finish_and_are_acked_before_the_worker_stops() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()
    release = asyncio.Event()

    @app.task(name="t.slow")
    async def slow(n: int) -> None:
        ledger.record("started", n)
        await release.wait()
        ledger.record("finished", n)

    worker, running = await start(app, concurrency=4, drain_timeout=30)
    for n in range(3):
        await slow.adelay(n)
    await ledger.wait_for(3)
    worker.stop()
    await clock.yield_control()
    assert not running.done()  # waiting for the three to finish
    release.set()
    await running
    assert sorted(v for k, v in ledger.runs if k == "finished") == [0, 1, 2]
    transport = await transport_of(app)
    assert await transport.message_count("work") == 0  # acked: none will run again
    await app.aclose()


async def test_tasks_still_running_at_the_drain_timeout_are_requeued() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.stuck")
    async def stuck() -> None:
        ledger.record("started")
        await clock.sleep(3600)
        ledger.record("finished")

    worker, running = await start(app, concurrency=2, drain_timeout=5)
    await stuck.adelay()
    await ledger.wait_for(1)
    worker.stop()
    await clock.advance_by(4.9)
    assert not running.done()
    await clock.advance_by(0.2)
    await running
    assert ledger.counts() == {"started": 1}
    transport = await transport_of(app)
    assert await transport.message_count("work") == 1  # back in the queue, not lost
    delivery = await transport.get("work")
    assert delivery is not None and delivery.redelivered
    await app.aclose()


async def test_deliveries_that_have_not_started_are_handed_back_at_once() -> None:
    """Two queues, concurrency 1: one task runs, the other waits for the slot."""
    clock = ManualClock()
    app = memory_app(clock, default_queue="a")
    ledger = Ledger()
    ledger.bind()
    release = asyncio.Event()

    @app.task(name="t.block", queue="a")
    async def block() -> None:
        ledger.record("block")
        await release.wait()

    @app.task(name="t.other", queue="b")
    async def other() -> None:
        ledger.record("other")

    worker, running = await start(app, queues=["a", "b"], concurrency=1, drain_timeout=30)
    await block.adelay()
    await ledger.wait_for(1)
    await other.adelay()
    await clock.yield_control()
    assert worker.in_flight == 2
    worker.stop()
    await clock.yield_control()
    transport = await transport_of(app)
    assert await transport.message_count("b") == 1  # handed back while `block` still runs
    assert not running.done()
    release.set()
    await running
    assert ledger.counts() == {"block": 1}
    transport = await transport_of(app)  # the worker's connection closed with it
    assert await transport.message_count("a") == 0
    assert await transport.message_count("b") == 1
    await app.aclose()


async def test_startup_and_shutdown_hooks_run_in_order() -> None:
    app = memory_app(ManualClock())
    calls: list[str] = []

    @app.on_startup
    def first() -> None:
        calls.append("startup-sync")

    @app.on_startup
    async def second() -> None:
        calls.append("startup-async")

    @app.on_shutdown
    async def cleanup() -> None:
        calls.append("shutdown")

    worker, running = await start(app)
    assert calls == ["startup-sync", "startup-async"]
    worker.stop()
    await running
    assert calls == ["startup-sync", "startup-async", "shutdown"]


async def test_a_message_that_never_completes_is_dead_lettered_after_the_delivery_limit() -> None:
    """Classic queue: each worker dies holding it (here: a drain with no time to finish)."""
    clock = ManualClock()
    app = memory_app(clock, default_queue="work", queue_type="classic", delivery_limit=3)
    ledger = Ledger()
    ledger.bind()
    never = asyncio.Event()

    @app.task(name="t.poison")
    async def poison() -> None:
        ledger.record("started")
        await never.wait()

    await poison.adelay()
    for attempt in range(1, 4):  # three runs, each ended by the worker going away
        worker, running = await start(app, drain_timeout=0)
        await ledger.wait_for(attempt)
        worker.stop()
        await running
    worker, running = await start(app)  # the fourth delivery is not run
    transport = await transport_of(app)
    for _ in range(50):
        if await transport.message_count("work.dead"):
            break
        await clock.yield_control()
    worker.stop()
    await running
    transport = await transport_of(app)
    dead = await transport.get("work.dead")
    assert dead is not None
    assert dead.properties.headers["hare-dead-reason"] == "delivery-limit"
    assert dead.properties.headers["hare-redeliveries"] == 2
    assert ledger.counts() == {"started": 3}
    assert await transport.message_count("work") == 0
    await app.aclose()
