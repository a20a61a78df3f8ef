"""The contract's tests of consuming: prefetch, acks, rejects, dead letters, requeues."""

from __future__ import annotations

import anyio

from hare.core.envelope import Delivery
from hare.testing.transport_contract.support import (
    ContractEnv,
    async_check,
    count_becomes,
    envelope,
    eventually,
    get_eventually,
)


class ConsumingContract:
    """The contract's tests of consuming: prefetch, acks, rejects, dead letters, requeues."""

    # -- consuming -------------------------------------------------------------------------------

    async def test_consume_respects_prefetch(self, env: ContractEnv) -> None:
        producer, worker = await env.connect(), await env.connect()
        queue = await env.queue(producer, "q")
        received: list[Delivery] = []

        async def handler(delivery: Delivery) -> None:
            received.append(delivery)

        await worker.consume(queue, handler, prefetch=2)
        for index in range(5):
            await producer.publish(envelope(queue, str(index).encode()))

        await count_becomes(producer, queue, 3)
        await eventually(async_check(lambda: len(received) == 2), what="two deliveries")
        assert len(received) == 2
        assert [d.body for d in received] == [b"0", b"1"]

        await worker.ack(received[0])
        await eventually(
            async_check(lambda: len(received) == 3), what="a third delivery after an ack"
        )
        await count_becomes(producer, queue, 2)
        assert len(received) == 3

    async def test_deliveries_are_handled_concurrently(self, env: ContractEnv) -> None:
        # Each delivery runs in its own task: a handler that waits does not hold up the next.
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        both_running = anyio.Event()
        running: list[bytes] = []
        finished: list[bytes] = []

        async def handler(delivery: Delivery) -> None:
            running.append(delivery.body)
            if len(running) == 2:
                both_running.set()
            await both_running.wait()
            await transport.ack(delivery)
            finished.append(delivery.body)

        await transport.consume(queue, handler, prefetch=2)
        await transport.publish(envelope(queue, b"a"))
        await transport.publish(envelope(queue, b"b"))

        await eventually(async_check(lambda: len(finished) == 2), what="both handlers to finish")
        assert sorted(finished) == [b"a", b"b"]

    async def test_ack_removes_the_message(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        await transport.publish(envelope(queue))
        delivery = await get_eventually(transport, queue)
        await transport.ack(delivery)
        await transport.close()

        again = await env.connect()
        assert await again.message_count(queue) == 0
        assert await again.get(queue) is None

    async def test_reject_with_requeue_redelivers(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        await transport.publish(envelope(queue, b"again"))
        first = await get_eventually(transport, queue)
        assert first.redelivered is False

        await transport.reject(first, requeue=True)

        second = await get_eventually(transport, queue)
        assert (second.body, second.redelivered) == (b"again", True)
        await transport.ack(second)

    async def test_reject_without_requeue_dead_letters_as_rejected(self, env: ContractEnv) -> None:
        transport = await env.connect()
        dead = await env.queue(transport, "dead")
        source = await env.queue(
            transport, "src", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
        )
        await transport.publish(
            envelope(source, b"doomed", expiration="3600000", headers={"k": "v"})
        )
        delivery = await get_eventually(transport, source)

        await transport.reject(delivery, requeue=False)

        dead_letter = await get_eventually(transport, dead)
        headers = dead_letter.properties.headers
        (death,) = headers["x-death"]
        assert death["reason"] == "rejected"
        assert death["queue"] == source
        assert death["count"] == 1
        assert death["exchange"] == ""
        assert death["routing-keys"] == [source]
        assert death["original-expiration"] == "3600000"
        assert "time" in death
        assert headers["x-first-death-reason"] == "rejected"
        assert headers["x-first-death-queue"] == source
        assert headers["x-first-death-exchange"] == ""
        assert headers["k"] == "v"
        assert dead_letter.properties.expiration is None
        assert (dead_letter.body, dead_letter.exchange, dead_letter.routing_key) == (
            b"doomed",
            "",
            dead,
        )
        await transport.ack(dead_letter)
        assert await transport.message_count(source) == 0

    async def test_reject_without_requeue_and_without_dlx_drops(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        await transport.publish(envelope(queue))
        delivery = await get_eventually(transport, queue)
        await transport.reject(delivery, requeue=False)
        await transport.close()

        again = await env.connect()
        assert await again.message_count(queue) == 0

    async def test_queue_ttl_dead_letters_expired_messages(self, env: ContractEnv) -> None:
        # TTL 0 expires a message on arrival unless a consumer takes it at once (docs: ttl).
        transport = await env.connect()
        dead = await env.queue(transport, "dead")
        source = await env.queue(
            transport,
            "ttl",
            **{"x-message-ttl": 0, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
        )
        await transport.publish(envelope(source, b"late"))

        dead_letter = await get_eventually(transport, dead)
        (death,) = dead_letter.properties.headers["x-death"]
        assert (death["reason"], death["queue"], death["count"]) == ("expired", source, 1)
        assert "original-expiration" not in death
        assert dead_letter.body == b"late"
        await transport.ack(dead_letter)
        assert await transport.message_count(source) == 0

    async def test_message_expiration_dead_letters_with_original_expiration(
        self, env: ContractEnv
    ) -> None:
        transport = await env.connect()
        dead = await env.queue(transport, "dead")
        source = await env.queue(
            transport, "src", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
        )
        await transport.publish(envelope(source, b"expiring", expiration="0"))

        dead_letter = await get_eventually(transport, dead)
        (death,) = dead_letter.properties.headers["x-death"]
        assert (death["reason"], death["original-expiration"]) == ("expired", "0")
        # The expiration is removed so the message does not expire again downstream.
        assert dead_letter.properties.expiration is None
        await transport.ack(dead_letter)

    async def test_quorum_delivery_limit_dead_letters(self, env: ContractEnv) -> None:
        transport = await env.connect()
        dead = await env.queue(transport, "dead")
        queue = await env.queue(
            transport,
            "quorum",
            **{
                "x-queue-type": "quorum",
                "x-delivery-limit": 1,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead,
            },
        )
        await transport.publish(envelope(queue, b"poison"))

        first = await get_eventually(transport, queue)
        assert first.properties.headers.get("x-delivery-count", 0) == 0
        await transport.reject(first, requeue=True)
        second = await get_eventually(transport, queue)
        assert second.redelivered is True
        assert second.properties.headers["x-delivery-count"] == 1
        # Returned more often than the limit allows: dead-lettered, not redelivered.
        await transport.reject(second, requeue=True)

        dead_letter = await get_eventually(transport, dead)
        assert dead_letter.properties.headers["x-death"][0]["reason"] == "delivery_limit"
        await transport.ack(dead_letter)
        assert await transport.message_count(queue) == 0

    async def test_close_requeues_unsettled_deliveries(self, env: ContractEnv) -> None:
        producer, worker = await env.connect(), await env.connect()
        queue = await env.queue(producer, "q")
        received: list[Delivery] = []

        async def handler(delivery: Delivery) -> None:
            received.append(delivery)

        await worker.consume(queue, handler, prefetch=10)
        await producer.publish(envelope(queue, b"0"))
        await producer.publish(envelope(queue, b"1"))
        await eventually(async_check(lambda: len(received) == 2), what="two deliveries")
        assert await producer.message_count(queue) == 0

        await worker.close()

        await count_becomes(producer, queue, 2)
        first, second = await get_eventually(producer, queue), await get_eventually(producer, queue)
        assert [(d.body, d.redelivered) for d in (first, second)] == [(b"0", True), (b"1", True)]
        await producer.ack(first)
        await producer.ack(second)

    async def test_cancel_stops_deliveries(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        received: list[bytes] = []

        async def handler(delivery: Delivery) -> None:
            received.append(delivery.body)
            await transport.ack(delivery)

        consumer = await transport.consume(queue, handler, prefetch=10)
        assert consumer.queue == queue
        await transport.publish(envelope(queue, b"before"))
        await eventually(async_check(lambda: received == [b"before"]), what="the first delivery")

        await consumer.cancel()
        await transport.publish(envelope(queue, b"after"))

        assert await transport.message_count(queue) == 1
        assert received == [b"before"]

    async def test_closed_consumer_requeues_what_it_had_not_settled(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        received: list[Delivery] = []

        async def handler(delivery: Delivery) -> None:
            received.append(delivery)

        consumer = await transport.consume(queue, handler, prefetch=2)
        for body in (b"a", b"b", b"c"):
            await transport.publish(envelope(queue, body))
        await eventually(async_check(lambda: len(received) == 2), what="two deliveries")
        await transport.ack(received[0])

        await consumer.close()
        await consumer.close()  # twice is harmless

        await count_becomes(transport, queue, 2)
        assert transport.is_connected
        first = await get_eventually(transport, queue)
        assert (first.body, first.redelivered) == (b"b", True)
        await transport.ack(first)

    async def test_consumers_on_one_queue_share_the_deliveries(self, env: ContractEnv) -> None:
        producer, first, second = await env.connect(), await env.connect(), await env.connect()
        queue = await env.queue(producer, "q")
        got_first: list[Delivery] = []
        got_second: list[Delivery] = []

        async def to_first(delivery: Delivery) -> None:
            got_first.append(delivery)

        async def to_second(delivery: Delivery) -> None:
            got_second.append(delivery)

        await first.consume(queue, to_first, prefetch=1)
        await second.consume(queue, to_second, prefetch=1)
        for body in (b"a", b"b", b"c"):
            await producer.publish(envelope(queue, body))

        await eventually(
            async_check(lambda: len(got_first) == len(got_second) == 1), what="one delivery each"
        )
        await count_becomes(producer, queue, 1)
        assert {got_first[0].body, got_second[0].body} == {b"a", b"b"}
        await first.ack(got_first[0])
        # Only the first consumer has room now, so the last message must go to it.
        await eventually(
            async_check(lambda: len(got_first) == 2), what="the next delivery after an ack"
        )
        assert got_first[1].body == b"c"
        assert len(got_second) == 1
