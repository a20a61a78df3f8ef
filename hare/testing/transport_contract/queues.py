"""The contract's tests of queues: counts, purges, declarations, exclusive queues, streams."""

from __future__ import annotations

from typing import Any

import pytest

from hare.core.envelope import Delivery
from hare.core.topology import Exchange, Queue
from hare.errors import (
    BrokerError,
    ConfigurationError,
    MessageReturned,
    NotSupportedError,
    TopologyMismatch,
)
from hare.testing.transport_contract.support import (
    ContractEnv,
    async_check,
    envelope,
    eventually,
    get_eventually,
)


class QueueContract:
    """The contract's tests of queues: counts, purges, declarations, exclusive queues, streams."""

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
        await eventually(async_check(lambda: received == [b"new"]), what="only the new message")

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
        await eventually(async_check(lambda: len(received) == 1), what="the stream's message")
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
        await eventually(async_check(lambda: len(received) >= count), what=f"{count} from {stream}")
        await consumer.cancel()
        await reader.close()
        return received
