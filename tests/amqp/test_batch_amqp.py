"""A batch on a real RabbitMQ: 5,000 calls pipelined on one channel, each confirmed and in its
queue once; a message the broker refuses is reported in its slot while the others land."""

from __future__ import annotations

import asyncio

import pytest

from hare import Call, Sent
from hare.core.envelope import Delivery
from hare.core.topology import Queue
from hare.errors import PublishNacked
from tests.amqp.helpers import amqp_app, delete_queues

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

COUNT = 5_000


async def test_five_thousand_calls_are_each_confirmed_and_queued_once(
    amqp_url: str, unique: str
) -> None:
    queue = f"batch-{unique}"
    app = amqp_app(amqp_url, default_queue=queue)
    transport = (await app.publisher()).transport
    try:
        outcomes = await app.aenqueue_many([Call("t.add", (i, i)) for i in range(COUNT)])
        assert all(isinstance(outcome, Sent) for outcome in outcomes)
        ids = {outcome.id for outcome in outcomes if isinstance(outcome, Sent)}
        assert len(ids) == COUNT
        assert await transport.message_count(queue) == COUNT

        received: list[str] = []
        all_in = asyncio.Event()

        async def take(delivery: Delivery) -> None:
            received.append(delivery.properties.headers["id"])
            await transport.ack(delivery)
            if len(received) == COUNT:
                all_in.set()

        consumer = await transport.consume(queue, take, prefetch=1000)
        async with asyncio.timeout(30):
            await all_in.wait()
        await consumer.close()
        assert len(received) == COUNT and set(received) == ids  # each exactly once
    finally:
        await delete_queues(transport, queue, queue + ".dead")
        await app.aclose()


async def test_a_message_the_broker_refuses_is_reported_in_its_slot(
    amqp_url: str, unique: str
) -> None:
    queue, full = f"batch-{unique}", f"batch-full-{unique}"
    app = amqp_app(amqp_url, default_queue=queue)
    transport = (await app.publisher()).transport
    # A queue that holds one message and nacks the next publish: hare uses it as it is.
    limits = {"x-max-length": 1, "x-overflow": "reject-publish"}
    await transport.declare_queue(Queue(name=full, arguments=limits))
    try:
        calls = [Call("t.add", (i, i)) for i in range(200)]
        calls[50] = Call("t.add", (50, 50), {}, {"queue": full})
        calls[120] = Call("t.add", (120, 120), {}, {"queue": full})
        outcomes = await app.aenqueue_many(calls, window=64)
        refused = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, PublishNacked)]
        assert len(refused) == 1 and refused[0] in (50, 120)  # one of the two found it full
        sent = [outcome for outcome in outcomes if isinstance(outcome, Sent)]
        assert len(sent) == 199
        assert await transport.message_count(queue) == 198
        assert await transport.message_count(full) == 1
    finally:
        await delete_queues(transport, queue, queue + ".dead", full, full + ".dead")
        await app.aclose()
