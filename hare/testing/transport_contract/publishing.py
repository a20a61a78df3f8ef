"""The contract's tests of connecting, publishing, getting and routing."""

from __future__ import annotations

import pytest

from hare.core.envelope import Envelope
from hare.core.topology import Binding
from hare.errors import (
    MessageReturned,
    PublishError,
    PublishNacked,
)
from hare.testing.transport_contract.support import (
    HEADERS,
    PROPERTIES,
    ContractEnv,
    envelope,
    get_eventually,
)


class PublishingContract:
    """The contract's tests of connecting, publishing, getting and routing."""

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
