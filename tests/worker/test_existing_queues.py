"""Queues that exist already are used as they are: only missing ones get hare's declaration.

A Celery worker declares its queues classic, without arguments; hare's own declaration of a
work queue (quorum, delivery limit, dead-letter routing) is refused on such a queue
(PRECONDITION_FAILED). On the memory transport, which refuses inequivalent redeclarations as
RabbitMQ does.
"""

from __future__ import annotations

import logging

import pytest

from hare.core.topology import (
    DEAD_SUFFIX,
    UNREACHABLE_DELIVERY_LIMIT,
    Queue,
    dead_letter_queue,
    work_queue,
)
from hare.publisher import Publisher
from hare.testing import Ledger, ManualClock, eventually, memory_app, running_worker
from hare.transport.memory.transport import MemoryTransport

pytestmark = pytest.mark.anyio


async def _celery_declares(transport: MemoryTransport, name: str) -> None:
    await transport.connect()
    await transport.declare_queue(Queue(name=name))  # durable, classic, no arguments


async def test_a_publisher_uses_a_queue_that_exists_with_other_arguments() -> None:
    clock = ManualClock()
    app = memory_app(clock)  # hare's defaults: quorum queues
    other = app.make_transport()
    assert isinstance(other, MemoryTransport)
    await _celery_declares(other, "q")

    @app.task(name="t.x", queue="q")
    async def x() -> None: ...

    await x.adelay()
    await x.adelay()
    assert other.broker.message_count("q") == 2
    assert other.broker.message_count("q" + DEAD_SUFFIX) == 0  # hare's own, declared
    await app.aclose()


async def test_a_missing_queue_gets_hare_s_declaration() -> None:
    app = memory_app(ManualClock())
    transport = app.make_transport()
    await transport.connect()
    await Publisher(transport, app.settings, app.clock).ensure_queue("fresh")
    # Declaring it again exactly as hare does is accepted: it was declared with hare's args.
    await transport.declare_queue(work_queue("fresh", "quorum", delivery_limit=10))
    await transport.close()
    await app.aclose()


async def test_a_worker_consumes_a_queue_declared_otherwise_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="q")
    other = app.make_transport()
    assert isinstance(other, MemoryTransport)
    await _celery_declares(other, "q")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.x")
    async def x(n: int) -> None:
        ledger.record("x", n)

    with caplog.at_level(logging.WARNING, logger="hare.worker"):
        async with running_worker(app) as worker:
            await x.adelay(1)
            await ledger.wait_for(1)
            processor = worker._processor_of()
            assert processor.self_counted == {"q"}  # no broker-side delivery count on it
    warnings = [r.getMessage() for r in caplog.records if "other arguments" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "inequivalent" in warnings[0] and "'q'" in warnings[0]
    assert ledger.runs == [("x", 1)]
    await app.aclose()


async def test_a_dead_letter_queue_is_replicated_like_its_work_queue() -> None:
    app = memory_app(ManualClock())
    transport = app.make_transport()
    await transport.connect()
    await Publisher(transport, app.settings, app.clock).ensure_queue("fresh")
    # hare declared it quorum, with a delivery limit out of reach (not 4.x's default of 20).
    dead = dead_letter_queue("fresh", "quorum")
    assert dead.arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": UNREACHABLE_DELIVERY_LIMIT,
    }
    await transport.declare_queue(dead)  # accepted: the same declaration
    assert dead_letter_queue("c", "classic").arguments == {"x-queue-type": "classic"}
    await transport.close()
    await app.aclose()


async def test_an_older_hare_s_classic_dead_letter_queue_is_used_and_named_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = memory_app(ManualClock(), default_queue="q")
    other = app.make_transport()
    assert isinstance(other, MemoryTransport)
    await other.connect()
    await other.declare_queue(dead_letter_queue("q", "classic"))  # as hare 0.x declared it

    @app.task(name="t.fails")
    async def fails() -> None:
        raise ValueError("no")

    with caplog.at_level(logging.WARNING, logger="hare.worker"):
        async with running_worker(app):
            await fails.adelay()
            await eventually(lambda: other.broker.message_count("q" + DEAD_SUFFIX) == 1)
    warnings = [r.getMessage() for r in caplog.records if "dead-letter queue" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "'q.dead'" in warnings[0] and "quorum" in warnings[0]
    await app.aclose()
