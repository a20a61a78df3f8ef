"""The contract's tests of consumers themselves: single active consumer, counts, liveness.

hare's periodic scheduler is the single active consumer of a quorum queue
(`hare.periodic.election`): these are the broker behaviours it stands on, measured on
RabbitMQ 3.10.8 and 4.0.5.
"""

from __future__ import annotations

from hare.core.envelope import Delivery
from hare.testing.transport_contract.support import (
    ContractEnv,
    async_check,
    envelope,
    eventually,
)
from hare.transport.base import DeliveryHandler

#: A quorum queue with one active consumer at a time, as the tick queue is declared.
SINGLE_ACTIVE = {
    "x-queue-type": "quorum",
    "x-single-active-consumer": True,
    "x-delivery-limit": 1_000_000,
}


class ConsumerContract:
    """The contract's tests of consumers themselves: single active consumer, counts, liveness."""

    async def test_single_active_consumer_hands_over_what_it_held(self, env: ContractEnv) -> None:
        """The first consumer gets every delivery; when its channel closes, what it had not
        settled goes to the next consumer, marked redelivered, and so does what comes next."""
        producer, first, second = await env.connect(), await env.connect(), await env.connect()
        queue = await env.queue(producer, "sac", **SINGLE_ACTIVE)
        got: dict[str, list[tuple[bytes, bool]]] = {"first": [], "second": []}

        def record(name: str) -> DeliveryHandler:
            async def handler(delivery: Delivery) -> None:
                got[name].append((delivery.body, delivery.redelivered))

            return handler

        held = await first.consume(queue, record("first"), prefetch=10)
        await second.consume(queue, record("second"), prefetch=10)
        for body in (b"a", b"b"):
            await producer.publish(envelope(queue, body))
        await eventually(async_check(lambda: len(got["first"]) == 2), what="2 to the first")
        assert got["second"] == []

        await held.close()
        await eventually(async_check(lambda: len(got["second"]) == 2), what="a hand-over")
        assert sorted(got["second"]) == [(b"a", True), (b"b", True)]
        await producer.publish(envelope(queue, b"c"))
        await eventually(async_check(lambda: len(got["second"]) == 3), what="the next one")
        assert got["second"][-1] == (b"c", False)
        assert len(got["first"]) == 2

    async def test_consumer_count(self, env: ContractEnv) -> None:
        """A passive declare counts a queue's consumers; a quorum queue with a single active
        consumer counts the active one only."""
        producer, worker = await env.connect(), await env.connect()
        plain = await env.queue(producer, "plain", **{"x-queue-type": "quorum"})
        single = await env.queue(producer, "single", **SINGLE_ACTIVE)

        async def handler(delivery: Delivery) -> None:
            return None

        assert await producer.consumer_count(plain) == 0
        for queue in (plain, plain, single, single):
            await worker.consume(queue, handler, prefetch=1)
        assert await producer.consumer_count(plain) == 2
        assert await producer.consumer_count(single) == 1
        await worker.close()

        async def gone() -> bool:
            return await producer.consumer_count(plain) == 0

        await eventually(gone, what="no consumers once their connection closed")

    async def test_a_consumer_says_whether_it_is_active(self, env: ContractEnv) -> None:
        worker = await env.connect()
        queue = await env.queue(worker, "q")

        async def handler(delivery: Delivery) -> None:
            return None

        cancelled = await worker.consume(queue, handler, prefetch=1)
        closed = await worker.consume(queue, handler, prefetch=1)
        lost = await worker.consume(queue, handler, prefetch=1)
        assert (cancelled.is_active, closed.is_active, lost.is_active) == (True, True, True)
        await cancelled.cancel()
        await closed.close()
        assert (cancelled.is_active, closed.is_active, lost.is_active) == (False, False, True)
        await worker.close()
        assert lost.is_active is False
