"""The behaviour every `Transport` must show, written against the Protocol only.

Subclass `TransportContract` in a `test_*.py` module and provide one fixture:

* `transport_factory`: an async callable returning a fresh, *connected* transport on the same
  broker each time it is called (so a test can open a producer and a consumer connection).

The `unique` fixture (tests/conftest.py) names everything a test declares, and every queue is
deleted afterwards because a real RabbitMQ is shared. The Protocol has no `delete_exchange`,
so exchanges are declared `auto_delete` and bound to a sink queue at teardown: deleting the
queues deletes them (RabbitMQ 3.10 auto-deletes an exchange when its last binding goes).

Nothing here sleeps for a fixed time. Where a real broker acts asynchronously (a reject, a
closed channel) the tests poll with a deadline (`eventually`); TTL tests use a TTL of 0, which
RabbitMQ applies on arrival, so they need no waiting either. Time-driven expiry is tested on
the memory transport with a `ManualClock` (tests/transport/test_memory.py).

Marks combine through the class hierarchy (pytest collects `pytestmark` along the MRO), so a
subclass can add `pytestmark = pytest.mark.amqp` and keep the anyio mark set here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import pytest

from hare.core.envelope import Delivery, Envelope, Properties
from hare.core.topology import Binding, Exchange, Queue
from hare.errors import (
    BrokerError,
    ConfigurationError,
    MessageReturned,
    NotSupportedError,
    PublishError,
    PublishNacked,
    TopologyMismatch,
)
from hare.transport.base import Transport

__all__ = ("ContractEnv", "TransportContract", "TransportFactory", "eventually")

TransportFactory = Callable[[], Awaitable[Transport]]
T = TypeVar("T")

#: How long a real broker may take to show the effect of an asynchronous operation.
DEADLINE = 10.0

#: Header values of every type hare puts in headers, at the edges of their encodings.
HEADERS: dict[str, Any] = {
    "str": "text",
    "unicode": "héllo ✓",
    "empty": "",
    "int": 42,
    "zero": 0,
    "negative": -7,
    "big": 2**62,
    "big_negative": -(2**62),
    "float": 1.5,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "two", [3.5, None]],
    "dict": {"nested": {"deep": [True, "x"]}, "n": 1},
}

#: Every Properties field set to a value that is not its default.
PROPERTIES = Properties(
    content_type="application/json",
    content_encoding="utf-8",
    headers=HEADERS,
    delivery_mode=2,
    priority=3,
    correlation_id="corr-1",
    reply_to="replies",
    expiration="3600000",
    message_id="msg-1",
    timestamp=1_700_000_000,
    type="task",
    app_id="hare-tests",
)


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, what: str, within: float = DEADLINE
) -> T:
    """Poll `check` until it returns something truthy; fail after `within` seconds.

    The first polls only yield, so an in-process transport passes without real waiting.
    """
    deadline = time.monotonic() + within
    pause = 0.0
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what} (last: {result!r})")
        await anyio.sleep(pause)
        pause = min(0.05, pause * 2 or 0.001)


def envelope(
    routing_key: str, body: bytes = b"body", *, exchange: str = "", **props: Any
) -> Envelope:
    return Envelope(
        exchange=exchange, routing_key=routing_key, body=body, properties=Properties(**props)
    )


async def get_eventually(transport: Transport, queue: str) -> Delivery:
    """The next message of `queue`, waiting for a real broker to have put it there."""

    async def attempt() -> Delivery | None:
        return await transport.get(queue)

    return await eventually(attempt, what=f"a message in {queue}")


async def count_becomes(transport: Transport, queue: str, expected: int) -> None:
    async def check() -> bool:
        return await transport.message_count(queue) == expected

    await eventually(check, what=f"{queue} to hold {expected} ready messages")


class ContractEnv:
    """Connections and names for one test, and the cleanup after it."""

    def __init__(self, factory: TransportFactory, unique: str) -> None:
        self.prefix = f"hare.contract.{unique}"
        self._factory = factory
        self._transports: list[Transport] = []
        self._queues: list[str] = []
        self._exchanges: list[str] = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    async def connect(self) -> Transport:
        transport = await self._factory()
        self._transports.append(transport)
        return transport

    async def queue(self, transport: Transport, suffix: str, **arguments: Any) -> str:
        """Declare a durable queue named after `suffix` with `arguments`; deleted afterwards."""
        name = self.name(suffix)
        self._queues.append(name)
        await transport.declare_queue(Queue(name=name, arguments=arguments))
        return name

    async def exchange(self, transport: Transport, suffix: str, kind: Any, **arguments: Any) -> str:
        """Declare an auto-delete exchange; deleted afterwards with the queues bound to it."""
        name = self.name(suffix)
        self._exchanges.append(name)
        await transport.declare_exchange(
            Exchange(name=name, type=kind, durable=False, auto_delete=True, arguments=arguments)
        )
        return name

    async def cleanup(self) -> None:
        for transport in self._transports:
            await _quietly(transport.close())
        cleaner = await self._factory()
        try:
            sink = self.name("sink")
            await cleaner.declare_queue(Queue(name=sink, durable=False))
            for exchange in self._exchanges:
                # A 404 closes the channel on RabbitMQ: use a fresh connection after one.
                try:
                    await cleaner.bind(
                        Binding(exchange=exchange, destination=sink, routing_key="#")
                    )
                except BrokerError:
                    await _quietly(cleaner.close())
                    cleaner = await self._factory()
            for queue in [*self._queues, sink]:
                await cleaner.delete_queue(queue)
        finally:
            await _quietly(cleaner.close())


async def _quietly(operation: Awaitable[None]) -> None:
    try:
        await operation
    except BrokerError:
        pass


class TransportContract:
    """Behaviour every Transport shows, on RabbitMQ 3.10 semantics."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    async def env(
        self, transport_factory: TransportFactory, unique: str, anyio_backend: str
    ) -> AsyncIterator[ContractEnv]:
        env = ContractEnv(transport_factory, unique)
        try:
            yield env
        finally:
            await env.cleanup()

    # -- connection ------------------------------------------------------------------------------

    async def test_connected_until_closed(self, env: ContractEnv) -> None:
        transport = await env.connect()
        assert transport.is_connected
        await transport.close()
        assert not transport.is_connected

    # -- publish and get -------------------------------------------------------------------------

    async def test_round_trip_preserves_body_properties_and_headers(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        body = b"\x00\x01 body \xff"
        await transport.publish(
            Envelope(exchange="", routing_key=queue, body=body, properties=PROPERTIES)
        )

        delivery = await get_eventually(transport, queue)

        assert delivery.body == body
        assert delivery.properties == PROPERTIES
        assert dict(delivery.properties.headers) == HEADERS
        assert (delivery.queue, delivery.exchange, delivery.routing_key) == (queue, "", queue)
        assert delivery.redelivered is False
        assert delivery.delivery_tag > 0
        await transport.ack(delivery)

    async def test_get_on_empty_queue_returns_none(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        assert await transport.get(queue) is None

    async def test_producer_and_consumer_connections_share_the_broker(
        self, env: ContractEnv
    ) -> None:
        producer, consumer = await env.connect(), await env.connect()
        queue = await env.queue(producer, "q")
        await producer.publish(envelope(queue, b"across"))
        delivery = await get_eventually(consumer, queue)
        assert delivery.body == b"across"
        await consumer.ack(delivery)

    # -- routing ---------------------------------------------------------------------------------

    async def test_default_exchange_routes_by_queue_name(self, env: ContractEnv) -> None:
        transport = await env.connect()
        first, second = await env.queue(transport, "a"), await env.queue(transport, "b")
        await transport.publish(envelope(second, b"to b"))
        assert await transport.message_count(first) == 0
        delivery = await get_eventually(transport, second)
        assert delivery.body == b"to b"
        await transport.ack(delivery)

    async def test_direct_exchange_routes_by_exact_key(self, env: ContractEnv) -> None:
        transport = await env.connect()
        exchange = await env.exchange(transport, "direct", "direct")
        red, blue = await env.queue(transport, "red"), await env.queue(transport, "blue")
        await transport.bind(Binding(exchange=exchange, destination=red, routing_key="red"))
        await transport.bind(Binding(exchange=exchange, destination=blue, routing_key="blue"))

        await transport.publish(envelope("red", exchange=exchange))
        await transport.publish(envelope("red", exchange=exchange))
        await transport.publish(envelope("blue", exchange=exchange))

        assert await transport.message_count(red) == 2
        assert await transport.message_count(blue) == 1
        delivery = await get_eventually(transport, red)
        assert (delivery.exchange, delivery.routing_key) == (exchange, "red")
        await transport.ack(delivery)

    async def test_topic_exchange_matches_star_and_hash(self, env: ContractEnv) -> None:
        transport = await env.connect()
        exchange = await env.exchange(transport, "topic", "topic")
        patterns = {"star": "orders.*", "hash": "orders.#", "exact": "orders.eu", "tail": "#.paris"}
        queues = {key: await env.queue(transport, key) for key in patterns}
        for key, pattern in patterns.items():
            await transport.bind(
                Binding(exchange=exchange, destination=queues[key], routing_key=pattern)
            )

        for routing_key in ("orders.eu", "orders.eu.paris", "orders", "other", "paris"):
            await transport.publish(envelope(routing_key, exchange=exchange), mandatory=False)

        counts = {key: await transport.message_count(queue) for key, queue in queues.items()}
        # orders.eu -> star, hash, exact; orders.eu.paris -> hash, tail; orders -> hash
        # ("#" is zero or more words); paris -> tail; other -> nothing.
        assert counts == {"star": 1, "hash": 3, "exact": 1, "tail": 2}

    async def test_fanout_exchange_ignores_routing_key(self, env: ContractEnv) -> None:
        transport = await env.connect()
        exchange = await env.exchange(transport, "fanout", "fanout")
        first, second = await env.queue(transport, "a"), await env.queue(transport, "b")
        await transport.bind(Binding(exchange=exchange, destination=first, routing_key="a"))
        await transport.bind(Binding(exchange=exchange, destination=second, routing_key=""))

        await transport.publish(envelope("anything", exchange=exchange))

        assert await transport.message_count(first) == 1
        assert await transport.message_count(second) == 1

    async def test_exchange_to_exchange_binding(self, env: ContractEnv) -> None:
        transport = await env.connect()
        source = await env.exchange(transport, "source", "direct")
        middle = await env.exchange(transport, "middle", "fanout")
        queue = await env.queue(transport, "q")
        await transport.bind(
            Binding(exchange=source, destination=middle, routing_key="k", to_exchange=True)
        )
        await transport.bind(Binding(exchange=middle, destination=queue, routing_key=""))

        await transport.publish(envelope("k", b"through", exchange=source))
        await transport.publish(envelope("not-k", exchange=source), mandatory=False)

        delivery = await get_eventually(transport, queue)
        # The delivery names the exchange the message was published to, not the last hop.
        assert (delivery.body, delivery.exchange, delivery.routing_key) == (b"through", source, "k")
        await transport.ack(delivery)
        assert await transport.message_count(queue) == 0

    async def test_alternate_exchange_takes_unroutable_messages(self, env: ContractEnv) -> None:
        transport = await env.connect()
        alternate = await env.exchange(transport, "ae", "fanout")
        parking = await env.queue(transport, "parking")
        await transport.bind(Binding(exchange=alternate, destination=parking, routing_key=""))
        exchange = await env.exchange(
            transport, "main", "direct", **{"alternate-exchange": alternate}
        )
        known = await env.queue(transport, "known")
        await transport.bind(Binding(exchange=exchange, destination=known, routing_key="known"))

        await transport.publish(envelope("known", b"routed", exchange=exchange))
        await transport.publish(envelope("unknown", b"parked", exchange=exchange))  # mandatory

        assert await transport.message_count(known) == 1
        parked = await get_eventually(transport, parking)
        assert (parked.body, parked.exchange, parked.routing_key) == (
            b"parked",
            exchange,
            "unknown",
        )
        await transport.ack(parked)

    async def test_mandatory_unroutable_publish_raises_message_returned(
        self, env: ContractEnv
    ) -> None:
        transport = await env.connect()
        with pytest.raises(MessageReturned) as caught:
            await transport.publish(envelope(env.name("nowhere")), mandatory=True)
        assert caught.value.reply_code == 312

    async def test_unroutable_publish_without_mandatory_is_dropped(self, env: ContractEnv) -> None:
        transport = await env.connect()
        await transport.publish(envelope(env.name("nowhere")), mandatory=False)

    async def test_publish_to_missing_exchange_raises_publish_error(self, env: ContractEnv) -> None:
        transport = await env.connect()
        with pytest.raises(PublishError):
            await transport.publish(envelope("k", exchange=env.name("missing")))

    async def test_transport_still_works_after_a_failed_publish(self, env: ContractEnv) -> None:
        # RabbitMQ closes the channel on a 404; the transport must carry on regardless.
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        with pytest.raises(PublishError):
            await transport.publish(envelope("k", exchange=env.name("missing")))
        await transport.publish(envelope(queue, b"after"))
        delivery = await get_eventually(transport, queue)
        assert delivery.body == b"after"
        await transport.ack(delivery)

    async def test_max_length_reject_publish_nacks_and_keeps_depth(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(
            transport,
            "slot",
            **{"x-queue-type": "classic", "x-max-length": 1, "x-overflow": "reject-publish"},
        )
        await transport.publish(envelope(queue, b"first"))
        with pytest.raises(PublishNacked):
            await transport.publish(envelope(queue, b"second"))
        assert await transport.message_count(queue) == 1
        delivery = await get_eventually(transport, queue)
        assert delivery.body == b"first"
        await transport.ack(delivery)

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
        await eventually(_async(lambda: len(received) == 2), what="two deliveries")
        assert len(received) == 2
        assert [d.body for d in received] == [b"0", b"1"]

        await worker.ack(received[0])
        await eventually(_async(lambda: len(received) == 3), what="a third delivery after an ack")
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

        await eventually(_async(lambda: len(finished) == 2), what="both handlers to finish")
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
        await eventually(_async(lambda: len(received) == 2), what="two deliveries")
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
        await eventually(_async(lambda: received == [b"before"]), what="the first delivery")

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
        await eventually(_async(lambda: len(received) == 2), what="two deliveries")
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
            _async(lambda: len(got_first) == len(got_second) == 1), what="one delivery each"
        )
        await count_becomes(producer, queue, 1)
        assert {got_first[0].body, got_second[0].body} == {b"a", b"b"}
        await first.ack(got_first[0])
        # Only the first consumer has room now, so the last message must go to it.
        await eventually(_async(lambda: len(got_first) == 2), what="the next delivery after an ack")
        assert got_first[1].body == b"c"
        assert len(got_second) == 1

    # -- queue management ------------------------------------------------------------------------

    async def test_purge_and_message_count(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        assert await transport.message_count(queue) == 0
        for _ in range(3):
            await transport.publish(envelope(queue))
        assert await transport.message_count(queue) == 3

        assert await transport.purge(queue) == 3

        assert await transport.message_count(queue) == 0
        assert await transport.purge(queue) == 0

    async def test_message_count_leaves_out_unsettled_messages(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        await transport.publish(envelope(queue))
        await transport.publish(envelope(queue))
        delivery = await get_eventually(transport, queue)
        assert await transport.message_count(queue) == 1
        await transport.ack(delivery)

    async def test_delete_queue_drops_it_and_its_messages(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q")
        await transport.publish(envelope(queue))
        await transport.delete_queue(queue)
        with pytest.raises(MessageReturned):
            await transport.publish(envelope(queue))
        await env.queue(transport, "q")
        assert await transport.message_count(queue) == 0

    async def test_delete_missing_queue_is_not_an_error(self, env: ContractEnv) -> None:
        transport = await env.connect()
        await transport.delete_queue(env.name("never-declared"))

    # -- declarations ----------------------------------------------------------------------------

    async def test_redeclare_with_same_arguments_is_a_no_op(self, env: ContractEnv) -> None:
        transport = await env.connect()
        arguments = {"x-message-ttl": 60_000, "x-max-length": 10}
        queue = await env.queue(transport, "q", **arguments)
        await transport.publish(envelope(queue))
        await transport.declare_queue(Queue(name=queue, arguments=arguments))
        assert await transport.message_count(queue) == 1
        exchange = await env.exchange(transport, "x", "topic")
        await transport.declare_exchange(
            Exchange(name=exchange, type="topic", durable=False, auto_delete=True)
        )

    async def test_classic_type_argument_equals_no_type(self, env: ContractEnv) -> None:
        transport = await env.connect()
        untyped = await env.queue(transport, "untyped")
        await transport.declare_queue(Queue(name=untyped, arguments={"x-queue-type": "classic"}))
        typed = await env.queue(transport, "typed", **{"x-queue-type": "classic"})
        await transport.declare_queue(Queue(name=typed))

    async def test_redeclare_queue_with_other_arguments_raises_topology_mismatch(
        self, env: ContractEnv
    ) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "q", **{"x-message-ttl": 1000})
        with pytest.raises(TopologyMismatch):
            await transport.declare_queue(Queue(name=queue, arguments={"x-message-ttl": 2000}))
        with pytest.raises(TopologyMismatch):
            await transport.declare_queue(Queue(name=queue))
        with pytest.raises(TopologyMismatch):
            await transport.declare_queue(
                Queue(name=queue, durable=False, arguments={"x-message-ttl": 1000})
            )
        with pytest.raises(TopologyMismatch):
            await transport.declare_queue(
                Queue(name=queue, arguments={"x-message-ttl": 1000, "x-queue-type": "quorum"})
            )

    async def test_redeclare_exchange_with_other_type_raises_topology_mismatch(
        self, env: ContractEnv
    ) -> None:
        transport = await env.connect()
        exchange = await env.exchange(transport, "x", "direct")
        with pytest.raises(TopologyMismatch):
            await transport.declare_exchange(
                Exchange(name=exchange, type="topic", durable=False, auto_delete=True)
            )

    # -- exclusive queues (pidbox, reply queues) ---------------------------------------------

    async def test_exclusive_queue_belongs_to_its_connection(self, env: ContractEnv) -> None:
        owner, other = await env.connect(), await env.connect()
        name = env.name("mine")
        # Declared as Celery declares `<node>.celery.pidbox` (kombu's Mailbox defaults).
        spec = Queue(
            name=name,
            durable=False,
            exclusive=True,
            auto_delete=True,
            arguments={"x-expires": 10_000, "x-message-ttl": 300_000},
        )
        await owner.declare_queue(spec)
        await owner.declare_queue(spec)  # the same declaration again is a no-op
        await owner.publish(envelope(name, b"private"))
        delivery = await get_eventually(owner, name)
        assert delivery.body == b"private"
        await owner.ack(delivery)

        async def handler(delivery: Delivery) -> None:
            pass

        with pytest.raises(BrokerError):
            await other.consume(name, handler, prefetch=1)

        await owner.close()
        # Gone with its connection: a mandatory publish to it comes back.
        probe = await env.connect()
        with pytest.raises(MessageReturned):
            await probe.publish(envelope(name, b"late"))

    # -- streams ---------------------------------------------------------------------------------

    async def test_stream_replays_from_first_to_every_consumer(self, env: ContractEnv) -> None:
        producer = await env.connect()
        stream = await env.queue(producer, "stream", **{"x-queue-type": "stream"})
        for body in (b"a", b"b", b"c"):
            await producer.publish(envelope(stream, body))

        first = await self._read_stream(env, stream, "first", 3)
        assert [d.body for d in first] == [b"a", b"b", b"c"]
        offsets = [d.properties.headers["x-stream-offset"] for d in first]
        assert offsets == [offsets[0], offsets[0] + 1, offsets[0] + 2]
        # Acked, and still there for the next reader.
        again = await self._read_stream(env, stream, "first", 3)
        assert [d.body for d in again] == [b"a", b"b", b"c"]
        # From an offset: only what follows it.
        tail = await self._read_stream(env, stream, offsets[1] + 1, 1)
        assert [d.body for d in tail] == [b"c"]

    async def test_stream_consumer_from_next_sees_only_new_messages(self, env: ContractEnv) -> None:
        producer, reader = await env.connect(), await env.connect()
        stream = await env.queue(producer, "stream", **{"x-queue-type": "stream"})
        await producer.publish(envelope(stream, b"old"))
        received: list[bytes] = []

        async def handler(delivery: Delivery) -> None:
            received.append(delivery.body)
            await reader.ack(delivery)

        await reader.consume(stream, handler, prefetch=10, arguments={"x-stream-offset": "next"})
        # The consumer is attached once basic.consume-ok came back: publish after it.
        await producer.publish(envelope(stream, b"new"))
        await eventually(_async(lambda: received == [b"new"]), what="only the new message")

    async def test_stream_refuses_reject(self, env: ContractEnv) -> None:
        # RabbitMQ closes the connection over a basic.reject of a stream delivery (540).
        producer, reader = await env.connect(), await env.connect()
        stream = await env.queue(producer, "stream", **{"x-queue-type": "stream"})
        await reader.declare_queue(Queue(name=stream, arguments={"x-queue-type": "stream"}))
        await producer.publish(envelope(stream, b"kept"))
        received: list[Delivery] = []

        async def handler(delivery: Delivery) -> None:
            received.append(delivery)

        await reader.consume(stream, handler, prefetch=1, arguments={"x-stream-offset": "first"})
        await eventually(_async(lambda: len(received) == 1), what="the stream's message")
        with pytest.raises(NotSupportedError):
            await reader.reject(received[0], requeue=True)
        await reader.ack(received[0])
        assert reader.is_connected
        again = await self._read_stream(env, stream, "first", 1)
        assert [d.body for d in again] == [b"kept"]

    async def test_stream_refuses_get_and_purge(self, env: ContractEnv) -> None:
        transport = await env.connect()
        stream = await env.queue(transport, "stream", **{"x-queue-type": "stream"})
        with pytest.raises(NotSupportedError):
            await transport.get(stream)
        with pytest.raises(NotSupportedError):
            await transport.purge(stream)
        # Refused before RabbitMQ saw it, so the connection is still there.
        await transport.publish(envelope(stream, b"still connected"))
        assert transport.is_connected

    async def test_stream_redeclare_compares_max_age(self, env: ContractEnv) -> None:
        transport = await env.connect()
        arguments = {"x-queue-type": "stream", "x-max-age": "1D"}
        stream = await env.queue(transport, "stream", **arguments)
        await transport.declare_queue(Queue(name=stream, arguments=arguments))
        with pytest.raises(TopologyMismatch):
            await transport.declare_queue(
                Queue(name=stream, arguments={**arguments, "x-max-age": "2D"})
            )

    async def test_stream_offset_on_a_classic_queue_is_refused(self, env: ContractEnv) -> None:
        transport = await env.connect()
        queue = await env.queue(transport, "classic")

        async def handler(delivery: Delivery) -> None:
            pass

        with pytest.raises(BrokerError):
            await transport.consume(
                queue, handler, prefetch=1, arguments={"x-stream-offset": "first"}
            )

    @pytest.mark.parametrize(
        ("arguments", "error"),
        [
            ({"x-stream-offset": 1.5}, ConfigurationError),
            ({"x-stream-offset": "bogus"}, ConfigurationError),
            ({"x-stream-offset": -1}, ConfigurationError),
            ({"x-stream-offset": True}, ConfigurationError),
            ({"x-priority": 5}, NotSupportedError),
        ],
    )
    async def test_consumer_arguments_are_checked_before_sending(
        self, env: ContractEnv, arguments: dict[str, Any], error: type[Exception]
    ) -> None:
        transport = await env.connect()
        stream = await env.queue(transport, "stream", **{"x-queue-type": "stream"})

        async def handler(delivery: Delivery) -> None:
            pass

        with pytest.raises(error):
            await transport.consume(stream, handler, prefetch=1, arguments=arguments)
        assert transport.is_connected

    async def _read_stream(
        self, env: ContractEnv, stream: str, offset: Any, count: int
    ) -> list[Delivery]:
        """Read `count` messages of `stream` from `offset` on a new connection, acking each."""
        reader = await env.connect()
        received: list[Delivery] = []

        async def handler(delivery: Delivery) -> None:
            received.append(delivery)
            await reader.ack(delivery)

        consumer = await reader.consume(
            stream, handler, prefetch=count, arguments={"x-stream-offset": offset}
        )
        await eventually(_async(lambda: len(received) >= count), what=f"{count} from {stream}")
        await consumer.cancel()
        await reader.close()
        return received


def _async(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check
