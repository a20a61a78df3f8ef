"""What only a ManualClock shows about the memory broker's streams and idle queues.

The behaviour shared with RabbitMQ is in the contract (hare.testing.transport_contract); these are
the time-driven parts: a stream's `x-max-age` and a queue's `x-expires`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hare.core.envelope import Delivery, Envelope, Properties
from hare.core.topology import Queue
from hare.testing import ManualClock
from hare.transport.memory.transport import MemoryBroker, MemoryTransport

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def transport(clock: ManualClock) -> AsyncIterator[MemoryTransport]:
    async with MemoryTransport(MemoryBroker(clock=clock)) as transport:
        yield transport


def _envelope(queue: str, body: bytes) -> Envelope:
    return Envelope(exchange="", routing_key=queue, body=body, properties=Properties())


async def _read_all(
    transport: MemoryTransport, clock: ManualClock, stream: str
) -> list[tuple[bytes, int]]:
    """(body, offset) of everything `stream` holds, read from "first" by a new consumer."""
    received: list[Delivery] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery)
        await transport.ack(delivery)

    consumer = await transport.consume(
        stream, handler, prefetch=100, arguments={"x-stream-offset": "first"}
    )
    await clock.yield_control()  # deliveries run in tasks of their own: let them run
    await consumer.cancel()
    return [(d.body, d.properties.headers["x-stream-offset"]) for d in received]


async def test_stream_drops_messages_older_than_max_age(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    await transport.declare_queue(
        Queue(name="s", arguments={"x-queue-type": "stream", "x-max-age": "1h"})
    )
    await transport.publish(_envelope("s", b"old"))
    await clock.advance_by(1800)
    await transport.publish(_envelope("s", b"middle"))
    await clock.advance_by(1799)
    assert await _read_all(transport, clock, "s") == [(b"old", 0), (b"middle", 1)]

    await clock.advance_by(1)  # "old" is an hour old now

    assert await _read_all(transport, clock, "s") == [(b"middle", 1)]
    assert await transport.message_count("s") == 1
    await transport.publish(_envelope("s", b"new"))
    assert await _read_all(transport, clock, "s") == [(b"middle", 1), (b"new", 2)]


async def test_stream_offset_before_the_first_kept_starts_at_the_first(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    await transport.declare_queue(
        Queue(name="s", arguments={"x-queue-type": "stream", "x-max-age": "10s"})
    )
    await transport.publish(_envelope("s", b"gone"))
    await clock.advance_by(10)
    await transport.publish(_envelope("s", b"kept"))
    received: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery.body)
        await transport.ack(delivery)

    await transport.consume("s", handler, prefetch=5, arguments={"x-stream-offset": 0})
    await clock.yield_control()
    assert received == [b"kept"]


async def test_unused_queue_with_x_expires_is_deleted(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    broker = transport.broker
    await transport.declare_queue(Queue(name="idle", arguments={"x-expires": 10_000}))
    await clock.advance_by(9)
    await transport.declare_queue(Queue(name="idle", arguments={"x-expires": 10_000}))
    await clock.advance_by(9)  # 18 s after the first declare, 9 s after the second
    assert "idle" in broker.queue_names()

    await clock.advance_by(1)

    assert "idle" not in broker.queue_names()


async def test_queue_with_x_expires_lives_while_consumed(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    broker = transport.broker
    await transport.declare_queue(Queue(name="busy", arguments={"x-expires": 1000}))

    async def handler(delivery: Delivery) -> None:
        await transport.ack(delivery)

    consumer = await transport.consume("busy", handler, prefetch=1)
    await clock.advance_by(60)
    assert "busy" in broker.queue_names()

    await consumer.cancel()  # unused from now on
    await clock.advance_by(0.999)
    assert "busy" in broker.queue_names()
    await clock.advance_by(0.001)
    assert "busy" not in broker.queue_names()
