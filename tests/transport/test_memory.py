"""The memory transport: the shared contract, then what only a ManualClock can show.

Nothing here sleeps in real time. Time-driven behaviour (TTLs, expiry at the head, a ladder of
TTL queues) is driven by advancing a `ManualClock`; the expected semantics are RabbitMQ
3.10.8's as measured (research/delays.md §3) and cited per test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from enum import Enum, IntEnum
from typing import Any

import pytest

from hare.core.envelope import Delivery, Envelope, Properties
from hare.core.topology import Binding, Exchange, Queue
from hare.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    MessageReturned,
    NotSupportedError,
    PublishError,
    PublishNacked,
    TopologyMismatch,
)
from hare.testing import ManualClock
from hare.testing.transport_contract import TransportContract, TransportFactory
from hare.transport.base import Transport
from hare.transport.memory.topology import topic_matches
from hare.transport.memory.transport import MemoryBroker, MemoryTransport

DLX_TO = "x-dead-letter-routing-key"
STREAM = {"x-queue-type": "stream"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def broker(clock: ManualClock) -> MemoryBroker:
    return MemoryBroker(clock=clock)


class TestMemoryTransport(TransportContract):
    """The contract, on a broker whose clock never moves: the contract must not need time."""

    @pytest.fixture
    def transport_factory(self, broker: MemoryBroker) -> TransportFactory:
        async def factory() -> Transport:
            transport = MemoryTransport(broker)
            await transport.connect()
            return transport

        return factory


# -- memory-only: helpers -------------------------------------------------------------------------


@pytest.fixture
async def transport(broker: MemoryBroker, anyio_backend: str) -> AsyncIterator[MemoryTransport]:
    async with MemoryTransport(broker) as connected:
        yield connected


def message(routing_key: str, body: bytes = b"m", *, exchange: str = "", **props: Any) -> Envelope:
    return Envelope(
        exchange=exchange, routing_key=routing_key, body=body, properties=Properties(**props)
    )


async def declare(transport: Transport, name: str, **arguments: Any) -> str:
    await transport.declare_queue(Queue(name=name, arguments=arguments))
    return name


async def dead_lettering(transport: Transport, name: str, into: str, **arguments: Any) -> str:
    """A queue that dead-letters into queue `into` through the default exchange."""
    return await declare(
        transport, name, **{"x-dead-letter-exchange": "", DLX_TO: into, **arguments}
    )


async def bodies(transport: Transport, queue: str) -> list[bytes]:
    """Take every ready message of `queue` (acking it) and return the bodies in order."""
    taken = []
    while (delivery := await transport.get(queue)) is not None:
        taken.append(delivery.body)
        await transport.ack(delivery)
    return taken


async def take(transport: Transport, queue: str) -> Delivery:
    delivery = await transport.get(queue)
    assert delivery is not None, f"{queue} is empty"
    return delivery


pytestmark = pytest.mark.anyio


# -- TTL and expiry, on the clock ---------------------------------------------------------------


async def test_queue_ttl_expires_only_when_the_clock_says_so(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    dest = await declare(transport, "dest")
    source = await dead_lettering(transport, "ttl", dest, **{"x-message-ttl": 1000})
    await transport.publish(message(source, b"x"))

    await clock.yield_control()
    await clock.advance_by(0.999)
    assert (await transport.message_count(source), await transport.message_count(dest)) == (1, 0)

    await clock.advance_by(0.001)
    assert (await transport.message_count(source), await transport.message_count(dest)) == (0, 1)
    death = (await take(transport, dest)).properties.headers["x-death"][0]
    assert death["reason"] == "expired"
    assert death["time"] == datetime.fromtimestamp(int(clock.time()), tz=UTC)


async def test_nothing_expires_while_time_stands_still(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    dest = await declare(transport, "dest")
    source = await dead_lettering(transport, "ttl", dest, **{"x-message-ttl": 1})
    await transport.publish(message(source))
    await clock.yield_control(500)
    assert await transport.message_count(source) == 1
    assert clock.pending == 1  # the broker's timer, waiting for the clock


async def test_expiry_is_seen_at_once_after_a_synchronous_advance(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    # The timer has not run yet, but a read of the queue drops what is due at its head.
    dest = await declare(transport, "dest")
    source = await dead_lettering(transport, "ttl", dest, **{"x-message-ttl": 100})
    await transport.publish(message(source))
    clock.advance(0.1)
    assert await transport.message_count(source) == 0
    assert await transport.message_count(dest) == 1


async def test_ladder_of_two_ttl_queues_delivers_after_the_sum(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    # A two-level delay ladder (DESIGN §5): level 1 (400 ms) dead-letters into level 0's
    # exchange, level 0 (100 ms) into the delivery exchange, which routes to the destination.
    await transport.declare_exchange(Exchange(name="lvl1", type="topic"))
    await transport.declare_exchange(Exchange(name="lvl0", type="topic"))
    await transport.declare_exchange(Exchange(name="delivery", type="topic"))
    level1 = await declare(
        transport, "level1", **{"x-message-ttl": 400, "x-dead-letter-exchange": "lvl0"}
    )
    level0 = await declare(
        transport, "level0", **{"x-message-ttl": 100, "x-dead-letter-exchange": "delivery"}
    )
    dest = await declare(transport, "dest")
    await transport.bind(Binding(exchange="lvl1", destination=level1, routing_key="#"))
    await transport.bind(Binding(exchange="lvl0", destination=level0, routing_key="#"))
    await transport.bind(Binding(exchange="delivery", destination=dest, routing_key="*.dest"))
    received: list[tuple[float, Delivery]] = []

    async def handler(delivery: Delivery) -> None:
        received.append((clock.monotonic(), delivery))
        await transport.ack(delivery)

    await transport.consume(dest, handler, prefetch=1)
    await transport.publish(message("1.dest", b"later", exchange="lvl1"))

    await clock.advance_by(0.399)
    assert (await transport.message_count(level1), received) == (1, [])
    await clock.advance_by(0.001)
    assert await transport.message_count(level0) == 1
    await clock.advance_by(10)

    ((at, delivery),) = received
    assert at == pytest.approx(0.5)
    assert (delivery.exchange, delivery.routing_key, delivery.body) == (
        "delivery",
        "1.dest",
        b"later",
    )
    headers = delivery.properties.headers
    assert [(d["queue"], d["reason"], d["exchange"]) for d in headers["x-death"]] == [
        ("level0", "expired", "lvl0"),
        ("level1", "expired", "lvl1"),
    ]
    assert (headers["x-first-death-queue"], headers["x-first-death-exchange"]) == ("level1", "lvl1")


async def test_a_long_expiration_at_the_head_blocks_a_short_one_behind_it(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    # docs: ttl, "Per-message TTL applied retroactively": expiry happens only at the head.
    dest = await declare(transport, "dest")
    source = await dead_lettering(transport, "q", dest)
    await transport.publish(message(source, b"long", expiration="10000"))
    await transport.publish(message(source, b"short", expiration="1000"))

    await clock.advance_by(1)
    assert await transport.message_count(source) == 2
    assert await transport.message_count(dest) == 0

    await clock.advance_by(9)
    assert await bodies(transport, dest) == [b"long", b"short"]


async def test_the_lower_of_queue_ttl_and_message_expiration_wins(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    dest = await declare(transport, "dest")
    source = await dead_lettering(transport, "q", dest, **{"x-message-ttl": 5000})
    await transport.publish(message(source, b"short", expiration="1000"))
    await clock.advance_by(1)
    assert await bodies(transport, dest) == [b"short"]

    await transport.publish(message(source, b"capped", expiration="9000"))
    await clock.advance_by(4.999)
    assert await transport.message_count(dest) == 0
    await clock.advance_by(0.001)
    assert await bodies(transport, dest) == [b"capped"]


async def test_an_earlier_head_elsewhere_wakes_the_timer(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    dest = await declare(transport, "dest")
    slow = await dead_lettering(transport, "slow", dest, **{"x-message-ttl": 10_000})
    fast = await dead_lettering(transport, "fast", dest, **{"x-message-ttl": 1000})
    await transport.publish(message(slow, b"slow"))
    await clock.yield_control()
    assert clock.next_deadline() == pytest.approx(10.0)

    await transport.publish(message(fast, b"fast"))
    await clock.yield_control()
    assert clock.next_deadline() == pytest.approx(1.0)
    await clock.advance_by(1)
    assert await bodies(transport, dest) == [b"fast"]


async def test_requeued_message_keeps_its_expiry(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    # research/delays.md §3.9-j: get + reject(requeue) kept the per-message deadline.
    dest = await declare(transport, "dest")
    source = await dead_lettering(transport, "q", dest, **{"x-message-ttl": 1000})
    await transport.publish(message(source))
    await clock.advance_by(0.5)
    await transport.reject(await take(transport, source), requeue=True)
    await clock.advance_by(0.5)
    assert await transport.message_count(dest) == 1


async def test_ttl_zero_reaches_a_consumer_that_is_ready(transport: MemoryTransport) -> None:
    dest = await declare(transport, "dest")
    source = await dead_lettering(transport, "ttl0", dest, **{"x-message-ttl": 0})
    received: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery.body)
        await transport.ack(delivery)

    await transport.consume(source, handler, prefetch=1)
    await transport.publish(message(source, b"now"))
    await asyncio.sleep(0)
    assert received == [b"now"]
    assert await transport.message_count(dest) == 0


async def test_timer_stops_when_the_last_connection_closes(
    broker: MemoryBroker, clock: ManualClock
) -> None:
    first, second = MemoryTransport(broker), MemoryTransport(broker)
    await first.connect()
    await second.connect()
    await declare(first, "ttl", **{"x-message-ttl": 1000})
    await first.publish(message("ttl"))
    await clock.yield_control()
    assert clock.pending == 1
    await first.close()
    assert clock.pending == 1
    await second.close()
    await clock.yield_control()
    assert clock.pending == 0


# -- routing ------------------------------------------------------------------------------------


async def test_alternate_exchange_parks_unroutable_dead_letters(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    # research/delays.md §3.8: an AE on the DLX makes unroutable dead letters "routed".
    await transport.declare_exchange(Exchange(name="park", type="fanout"))
    parking = await declare(transport, "parking")
    await transport.bind(Binding(exchange="park", destination=parking, routing_key=""))
    await transport.declare_exchange(
        Exchange(name="dlx", type="topic", arguments={"alternate-exchange": "park"})
    )
    dest = await declare(transport, "dest")
    await transport.bind(Binding(exchange="dlx", destination=dest, routing_key="good"))
    level = await declare(
        transport, "level", **{"x-message-ttl": 100, "x-dead-letter-exchange": "dlx"}
    )
    await transport.bind(Binding(exchange="amq.topic", destination=level, routing_key="#"))

    await transport.publish(message("good", b"g", exchange="amq.topic"))
    await transport.publish(message("bad", b"b", exchange="amq.topic"))
    await clock.advance_by(0.1)

    assert await bodies(transport, dest) == [b"g"]
    parked = await take(transport, parking)
    assert (parked.body, parked.exchange, parked.routing_key) == (b"b", "dlx", "bad")


async def test_alternate_exchange_is_skipped_when_an_exchange_binding_matches(
    transport: MemoryTransport,
) -> None:
    # rabbit_exchange:route/2 (measured): the AE is used only when the exchange's own bindings
    # match nothing, even if the exchange they lead to routes nowhere.
    await transport.declare_exchange(Exchange(name="ae", type="fanout"))
    parking = await declare(transport, "parking")
    await transport.bind(Binding(exchange="ae", destination=parking, routing_key=""))
    await transport.declare_exchange(Exchange(name="x", arguments={"alternate-exchange": "ae"}))
    await transport.declare_exchange(Exchange(name="empty"))
    await transport.bind(
        Binding(exchange="x", destination="empty", routing_key="k", to_exchange=True)
    )

    with pytest.raises(MessageReturned):
        await transport.publish(message("k", exchange="x"))
    await transport.publish(message("other", exchange="x"))
    assert await transport.message_count(parking) == 1


async def test_headers_exchange_matches_all_or_any(transport: MemoryTransport) -> None:
    await transport.declare_exchange(Exchange(name="h", type="headers"))
    every, some = await declare(transport, "all"), await declare(transport, "any")
    await transport.bind(
        Binding(exchange="h", destination=every, routing_key="", arguments={"a": 1, "b": "x"})
    )
    await transport.bind(
        Binding(
            exchange="h",
            destination=some,
            routing_key="",
            arguments={"x-match": "any", "a": 1, "b": "x"},
        )
    )
    await transport.publish(message("", exchange="h", headers={"a": 1, "b": "x"}))
    await transport.publish(message("", exchange="h", headers={"a": 1}))
    await transport.publish(message("", exchange="h", headers={"a": 2}), mandatory=False)
    assert (await transport.message_count(every), await transport.message_count(some)) == (1, 2)


#: Measured on RabbitMQ 3.10.8: which of these keys each topic pattern matched.
TOPIC_KEYS = ["", "a", "a.b", "a..b", ".a", "a.", "a.x.b", "a.x.y.b", "b", "x.a", "a.a", "x.b.y"]
TOPIC_MATCHES = {
    "*": ["a", "b"],
    "#": TOPIC_KEYS,
    "a.#": ["a", "a.b", "a..b", "a.", "a.x.b", "a.x.y.b", "a.a"],
    "#.a": ["a", ".a", "x.a", "a.a"],
    "*.*": ["a.b", ".a", "a.", "x.a", "a.a"],
    "a.*.b": ["a..b", "a.x.b"],
    "#.#": TOPIC_KEYS,
    "a.#.b": ["a.b", "a..b", "a.x.b", "a.x.y.b"],
    "*.#": [k for k in TOPIC_KEYS if k],
    "#.*": [k for k in TOPIC_KEYS if k],
    "": [""],
    "a": ["a"],
    "a.*": ["a.b", "a.", "a.a"],
    "*.a.#": [".a", "x.a", "a.a"],
    "#.b.#": ["a.b", "a..b", "a.x.b", "a.x.y.b", "b", "x.b.y"],
}


@pytest.mark.parametrize("pattern", sorted(TOPIC_MATCHES))
def test_topic_matching_agrees_with_rabbitmq(pattern: str) -> None:
    assert [key for key in TOPIC_KEYS if topic_matches(pattern, key)] == TOPIC_MATCHES[pattern]


# -- dead-letter headers --------------------------------------------------------------------------


async def test_x_death_merges_per_queue_and_reason(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    dead = await declare(transport, "dead")
    source = await dead_lettering(transport, "src", dead)
    expiring = await dead_lettering(transport, "ttl", dead, **{"x-message-ttl": 0})
    first_time = datetime.fromtimestamp(int(clock.time()), tz=UTC)

    await transport.publish(message(source, headers={"mine": 1}))
    await transport.reject(await take(transport, source), requeue=False)
    once = await take(transport, dead)
    await transport.ack(once)

    clock.advance(60)
    await republish(transport, once, source)
    await transport.reject(await take(transport, source), requeue=False)
    twice = await take(transport, dead)
    await transport.ack(twice)
    (entry,) = twice.properties.headers["x-death"]
    # The matching entry moves to the front with count + 1; its other fields stay as they were.
    assert (entry["count"], entry["reason"], entry["queue"], entry["time"]) == (
        2,
        "rejected",
        "src",
        first_time,
    )

    await republish(transport, twice, expiring)
    thrice = await take(transport, dead)
    headers = thrice.properties.headers
    assert [(d["queue"], d["reason"], d["count"]) for d in headers["x-death"]] == [
        ("ttl", "expired", 1),
        ("src", "rejected", 2),
    ]
    assert (headers["x-first-death-queue"], headers["x-first-death-reason"]) == ("src", "rejected")
    assert headers["mine"] == 1


async def republish(transport: Transport, delivery: Delivery, queue: str) -> None:
    """Publish a received message again, headers and all, as a careless worker would."""
    await transport.publish(
        Envelope(exchange="", routing_key=queue, body=delivery.body, properties=delivery.properties)
    )


async def test_republishing_with_death_headers_is_dropped_as_a_cycle(
    transport: MemoryTransport,
) -> None:
    # research/delays.md §3.9-e: levelA -> levelB -> dest, then republishing the arrived
    # message unchanged into levelA loses it; with the death headers stripped it arrives.
    dest = await declare(transport, "dest")
    level_b = await dead_lettering(transport, "levelB", dest, **{"x-message-ttl": 0})
    level_a = await dead_lettering(transport, "levelA", level_b, **{"x-message-ttl": 0})
    await transport.publish(message(level_a, b"trip"))
    arrived = await take(transport, dest)
    await transport.ack(arrived)
    assert len(arrived.properties.headers["x-death"]) == 2

    await republish(transport, arrived, level_a)
    assert await transport.message_count(dest) == 0

    stripped = {k: v for k, v in arrived.properties.headers.items() if not k.startswith("x-")}
    await transport.publish(message(level_a, b"clean", headers=stripped))
    assert await bodies(transport, dest) == [b"clean"]


async def test_rejection_breaks_a_dead_letter_cycle(transport: MemoryTransport) -> None:
    queue = await dead_lettering(transport, "self", "self")
    await transport.publish(message(queue, b"boomerang"))
    await transport.reject(await take(transport, queue), requeue=False)
    back = await take(transport, queue)
    assert back.properties.headers["x-death"][0]["reason"] == "rejected"


async def test_an_expired_message_does_not_loop_into_its_own_queue(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    queue = await dead_lettering(transport, "loop", "loop", **{"x-message-ttl": 100})
    await transport.publish(message(queue))
    await clock.advance_by(0.1)
    assert await transport.message_count(queue) == 0


# -- length limits ------------------------------------------------------------------------------


async def test_drop_head_dead_letters_the_oldest_as_maxlen(transport: MemoryTransport) -> None:
    dead = await declare(transport, "dead")
    queue = await dead_lettering(transport, "q", dead, **{"x-max-length": 2})
    for body in (b"1", b"2", b"3"):
        await transport.publish(message(queue, body))
    dropped = await take(transport, dead)
    assert dropped.body == b"1"
    assert dropped.properties.headers["x-death"][0]["reason"] == "maxlen"
    assert await bodies(transport, queue) == [b"2", b"3"]


async def test_reject_publish_counts_only_ready_messages(transport: MemoryTransport) -> None:
    # research/delays.md §3.6: an unacked delivery frees the slot, and a requeue puts the
    # message back even into a full queue (depth 2 measured).
    queue = await declare(transport, "slot", **{"x-max-length": 1, "x-overflow": "reject-publish"})
    await transport.publish(message(queue, b"a"))
    held = await take(transport, queue)
    await transport.publish(message(queue, b"b"))
    with pytest.raises(PublishNacked):
        await transport.publish(message(queue, b"c"))
    await transport.reject(held, requeue=True)
    assert await transport.message_count(queue) == 2


async def test_quorum_reject_publish_overshoots_by_one(transport: MemoryTransport) -> None:
    # research/delays.md §3.9-d: quorum, sequential publishes: ack, ack, nack (depth 2).
    queue = await declare(
        transport,
        "qslot",
        **{"x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "reject-publish"},
    )
    await transport.publish(message(queue))
    await transport.publish(message(queue))
    with pytest.raises(PublishNacked):
        await transport.publish(message(queue))
    assert await transport.message_count(queue) == 2


async def test_a_nack_from_one_queue_leaves_the_message_in_the_others(
    transport: MemoryTransport,
) -> None:
    await transport.declare_exchange(Exchange(name="both", type="fanout"))
    full = await declare(transport, "full", **{"x-max-length": 0, "x-overflow": "reject-publish"})
    open_queue = await declare(transport, "open")
    for queue in (full, open_queue):
        await transport.bind(Binding(exchange="both", destination=queue, routing_key=""))
    with pytest.raises(PublishNacked):
        await transport.publish(message("", exchange="both"))
    assert (await transport.message_count(full), await transport.message_count(open_queue)) == (
        0,
        1,
    )


async def test_reject_publish_dlx_dead_letters_the_refused_message(
    transport: MemoryTransport,
) -> None:
    dead = await declare(transport, "dead")
    queue = await dead_lettering(
        transport, "q", dead, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"}
    )
    await transport.publish(message(queue, b"kept"))
    with pytest.raises(PublishNacked):
        await transport.publish(message(queue, b"refused"))
    refused = await take(transport, dead)
    assert (refused.body, refused.properties.headers["x-death"][0]["reason"]) == (
        b"refused",
        "maxlen",
    )


# -- quorum queues: delivery limit, requeue order -----------------------------------------------


async def test_quorum_delivery_limit_counts_returns_to_consumers(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    dead = await declare(transport, "dead")
    queue = await dead_lettering(
        transport, "quorum", dead, **{"x-queue-type": "quorum", "x-delivery-limit": 2}
    )
    seen: list[Any] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.properties.headers.get("x-delivery-count"))
        await transport.reject(delivery, requeue=True)

    await transport.consume(queue, handler, prefetch=1)
    await transport.publish(message(queue, b"poison"))
    await clock.yield_control()

    # Delivered limit + 1 times; a consumer sees the header only once it is above 0.
    assert seen == [None, 1, 2]
    dead_letter = await take(transport, dead)
    assert dead_letter.properties.headers["x-death"][0]["reason"] == "delivery_limit"
    assert "x-delivery-count" not in dead_letter.properties.headers


async def test_classic_queues_ignore_the_delivery_limit(transport: MemoryTransport) -> None:
    queue = await declare(transport, "classic", **{"x-delivery-limit": 1})
    await transport.publish(message(queue))
    for _ in range(5):
        delivery = await take(transport, queue)
        assert "x-delivery-count" not in delivery.properties.headers
        await transport.reject(delivery, requeue=True)
    assert await transport.message_count(queue) == 1


async def test_requeue_order_classic_in_place_quorum_at_the_back(
    transport: MemoryTransport,
) -> None:
    # Measured on 3.10.8: classic puts returns back in publish order at the head; a quorum
    # queue appends them behind the ready messages, in the order they came back.
    for name, arguments, expected in (
        ("classic", {}, [b"0", b"1", b"2", b"3"]),
        ("quorum", {"x-queue-type": "quorum"}, [b"3", b"0", b"2", b"1"]),
    ):
        queue = await declare(transport, name, **arguments)
        for index in range(4):
            await transport.publish(message(queue, str(index).encode()))
        taken = [await take(transport, queue) for _ in range(3)]
        for index in (0, 2, 1):
            await transport.reject(taken[index], requeue=True)
        assert await bodies(transport, queue) == expected, name


async def test_quorum_get_always_shows_the_delivery_count(transport: MemoryTransport) -> None:
    queue = await declare(transport, "q", **{"x-queue-type": "quorum"})
    await transport.publish(message(queue))
    first = await take(transport, queue)
    assert first.properties.headers["x-delivery-count"] == 0
    await transport.close()  # a closed channel returns the delivery: it counts
    await transport.connect()
    again = await take(transport, queue)
    assert (again.properties.headers["x-delivery-count"], again.redelivered) == (1, True)


# -- settling -----------------------------------------------------------------------------------


async def test_settling_twice_raises(transport: MemoryTransport) -> None:
    queue = await declare(transport, "q")
    await transport.publish(message(queue))
    delivery = await take(transport, queue)
    await transport.ack(delivery)
    with pytest.raises(BrokerError, match="unknown delivery tag"):
        await transport.ack(delivery)
    with pytest.raises(BrokerError, match="unknown delivery tag"):
        await transport.reject(delivery, requeue=True)


async def test_settling_on_another_connection_raises(
    broker: MemoryBroker, transport: MemoryTransport
) -> None:
    queue = await declare(transport, "q")
    await transport.publish(message(queue))
    delivery = await take(transport, queue)
    async with MemoryTransport(broker) as other:
        await other.publish(message(queue))
        await take(other, queue)  # the same delivery tag, on the other connection
        with pytest.raises(BrokerError, match="unknown delivery tag"):
            await other.ack(delivery)
    await transport.ack(delivery)


async def test_settling_after_close_raises(transport: MemoryTransport) -> None:
    queue = await declare(transport, "q")
    await transport.publish(message(queue))
    delivery = await take(transport, queue)
    await transport.close()
    with pytest.raises(BrokerUnavailable):
        await transport.ack(delivery)


async def test_settling_a_delivery_of_a_deleted_queue_is_harmless(
    transport: MemoryTransport,
) -> None:
    queue = await declare(transport, "q")
    await transport.publish(message(queue))
    delivery = await take(transport, queue)
    await transport.delete_queue(queue)
    await transport.reject(delivery, requeue=True)
    assert queue not in transport.broker.queue_names()


async def test_close_cancels_running_handlers_and_requeues(
    broker: MemoryBroker, transport: MemoryTransport
) -> None:
    queue = await declare(transport, "q")
    worker = MemoryTransport(broker)
    await worker.connect()
    outcome: list[str] = []

    async def handler(delivery: Delivery) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    await worker.consume(queue, handler, prefetch=1)
    await transport.publish(message(queue))
    await asyncio.sleep(0)
    assert broker.unsettled_count(queue) == 1

    await worker.close()

    assert outcome == ["cancelled"]
    assert broker.unsettled_count(queue) == 0
    assert (await take(transport, queue)).redelivered is True


async def test_a_failing_handler_is_logged_and_its_delivery_stays_unsettled(
    broker: MemoryBroker,
    transport: MemoryTransport,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = await declare(transport, "q")

    async def handler(delivery: Delivery) -> None:
        raise ValueError("boom")

    await transport.consume(queue, handler, prefetch=5)
    with caplog.at_level(logging.ERROR, logger="hare.transport.memory.transport"):
        await transport.publish(message(queue))
        await clock.yield_control()
    assert "consumer handler failed" in caplog.text
    assert broker.unsettled_count(queue) == 1


async def test_a_handler_may_close_its_own_transport(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    queue = await declare(transport, "q")
    closed: list[bool] = []

    async def handler(delivery: Delivery) -> None:
        await transport.close()
        closed.append(True)

    await transport.consume(queue, handler, prefetch=1)
    await transport.publish(message(queue))
    await clock.yield_control()
    assert closed == [True]
    assert not transport.is_connected
    # The delivery went back to the queue when the connection closed.
    async with MemoryTransport(transport.broker) as other:
        assert (await take(other, queue)).redelivered is True


# -- consumers ----------------------------------------------------------------------------------


async def test_single_active_consumer_gets_everything(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    queue = await declare(transport, "sac", **{"x-single-active-consumer": True})
    got: dict[str, list[bytes]] = {"first": [], "second": []}

    def handler_for(name: str) -> Any:
        async def handler(delivery: Delivery) -> None:
            got[name].append(delivery.body)
            await transport.ack(delivery)

        return handler

    first = await transport.consume(queue, handler_for("first"), prefetch=10)
    await transport.consume(queue, handler_for("second"), prefetch=10)
    for body in (b"1", b"2", b"3"):
        await transport.publish(message(queue, body))
    await clock.yield_control()
    await first.cancel()
    await transport.publish(message(queue, b"4"))
    await clock.yield_control()
    assert got == {"first": [b"1", b"2", b"3"], "second": [b"4"]}


async def test_deleting_a_queue_cancels_its_consumers(
    transport: MemoryTransport, clock: ManualClock
) -> None:
    queue = await declare(transport, "q")
    received: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery.body)

    await transport.consume(queue, handler, prefetch=1)
    await transport.delete_queue(queue)
    await declare(transport, "q")
    await transport.publish(message(queue))
    await clock.yield_control()
    assert received == []


async def test_prefetch_must_fit_an_amqp_short(transport: MemoryTransport) -> None:
    queue = await declare(transport, "q")

    async def handler(delivery: Delivery) -> None:
        return None

    with pytest.raises(ConfigurationError):
        await transport.consume(queue, handler, prefetch=-1)
    with pytest.raises(ConfigurationError):
        await transport.consume(queue, handler, prefetch=65_536)


async def test_ten_thousand_messages_flow_through(broker: MemoryBroker) -> None:
    async with MemoryTransport(broker) as producer, MemoryTransport(broker) as worker:
        queue = await declare(producer, "bulk")
        done = asyncio.Event()
        count = 0

        async def handler(delivery: Delivery) -> None:
            nonlocal count
            await worker.ack(delivery)
            count += 1
            if count == 10_000:
                done.set()

        await worker.consume(queue, handler, prefetch=100)
        started = time.perf_counter()
        for index in range(10_000):
            await producer.publish(message(queue, str(index).encode(), headers={"i": index}))
        await asyncio.wait_for(done.wait(), timeout=60)
        assert await producer.message_count(queue) == 0
        assert time.perf_counter() - started < 30


# -- declarations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"x-message-ttl": 1000}, {"x-message-ttl": 1000.0}),
        ({"x-max-length": 1}, {"x-max-length": True}),
        (
            {"x-queue-type": "quorum", "x-delivery-limit": 2},
            {"x-queue-type": "quorum", "x-delivery-limit": 3},
        ),
        (
            {"x-queue-type": "quorum"},
            {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once"},
        ),
        ({"x-dead-letter-exchange": "a"}, {"x-dead-letter-exchange": "b"}),
    ],
)
async def test_inequivalent_arguments(transport: MemoryTransport, first: Any, second: Any) -> None:
    await declare(transport, "q", **first)
    with pytest.raises(TopologyMismatch):
        await declare(transport, "q", **second)


async def test_arguments_rabbitmq_does_not_compare(transport: MemoryTransport) -> None:
    await declare(transport, "q", foo=1)
    await declare(transport, "q", foo=2)
    await declare(transport, "c", **{"x-delivery-limit": 1})
    await declare(transport, "c")


@pytest.mark.parametrize(
    ("queue", "error"),
    [
        (Queue(name="q", arguments={"x-message-ttl": -1}), TopologyMismatch),
        (Queue(name="q", arguments={"x-message-ttl": 315_360_000_001}), TopologyMismatch),
        (Queue(name="q", arguments={"x-max-length": "5"}), TopologyMismatch),
        (Queue(name="q", arguments={"x-overflow": "nope"}), TopologyMismatch),
        (Queue(name="q", arguments={DLX_TO: "x"}), TopologyMismatch),
        (Queue(name="q", durable=False, arguments={"x-queue-type": "quorum"}), TopologyMismatch),
        (
            Queue(
                name="q", arguments={"x-queue-type": "quorum", "x-overflow": "reject-publish-dlx"}
            ),
            TopologyMismatch,
        ),
        (Queue(name="q", durable=False, arguments=STREAM), TopologyMismatch),
        (Queue(name="q", exclusive=True, arguments=STREAM), TopologyMismatch),
        (Queue(name="q", arguments={**STREAM, "x-max-age": "1x"}), TopologyMismatch),
        (Queue(name="q", arguments={**STREAM, "x-max-length-bytes": 10}), NotSupportedError),
        (Queue(name="q", arguments={"x-max-priority": 10}), NotSupportedError),
        (Queue(name="q", arguments={"x-expires": 0}), TopologyMismatch),
        (Queue(name="amq.q"), BrokerError),
        (Queue(name=""), BrokerError),
    ],
)
async def test_invalid_declarations(
    transport: MemoryTransport, queue: Queue, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await transport.declare_queue(queue)


async def test_exchange_equivalence_compares_only_the_alternate_exchange(
    transport: MemoryTransport,
) -> None:
    await transport.declare_exchange(
        Exchange(name="x", arguments={"alternate-exchange": "a", "foo": 1})
    )
    await transport.declare_exchange(Exchange(name="x", arguments={"alternate-exchange": "a"}))
    with pytest.raises(TopologyMismatch):
        await transport.declare_exchange(Exchange(name="x", arguments={"alternate-exchange": "b"}))
    with pytest.raises(TopologyMismatch):
        await transport.declare_exchange(
            Exchange(name="x", internal=True, arguments={"alternate-exchange": "a"})
        )


async def test_predeclared_and_default_exchanges(transport: MemoryTransport) -> None:
    await transport.declare_exchange(Exchange(name="amq.topic", type="topic"))
    with pytest.raises(BrokerError):
        await transport.declare_exchange(Exchange(name="amq.mine"))
    queue = await declare(transport, "q")
    with pytest.raises(BrokerError):
        await transport.bind(Binding(exchange="", destination=queue, routing_key="k"))
    with pytest.raises(BrokerError):
        await transport.bind(Binding(exchange="amq.direct", destination="missing", routing_key="k"))


async def test_exclusive_queue_belongs_to_its_connection(
    broker: MemoryBroker, transport: MemoryTransport
) -> None:
    await transport.declare_queue(Queue(name="mine", durable=False, exclusive=True))
    async with MemoryTransport(broker) as other:
        with pytest.raises(BrokerError, match="RESOURCE_LOCKED"):
            await other.declare_queue(Queue(name="mine", durable=False, exclusive=True))
        with pytest.raises(BrokerError, match="RESOURCE_LOCKED"):
            await other.get("mine")
        await other.publish(message("mine"))  # publishing to it is allowed
    assert await transport.message_count("mine") == 1
    await transport.close()
    assert "mine" not in broker.queue_names()


async def test_auto_delete_queue_goes_with_its_last_consumer(
    broker: MemoryBroker, transport: MemoryTransport
) -> None:
    await transport.declare_queue(Queue(name="temp", durable=False, auto_delete=True))

    async def handler(delivery: Delivery) -> None:
        return None

    first = await transport.consume("temp", handler, prefetch=1)
    second = await transport.consume("temp", handler, prefetch=1)
    await first.cancel()
    assert "temp" in broker.queue_names()
    await second.cancel()
    assert "temp" not in broker.queue_names()


async def test_auto_delete_exchanges_cascade(
    broker: MemoryBroker, transport: MemoryTransport
) -> None:
    # Measured on 3.10.8: deleting the queue removed "mid" (no bindings left) and then "src".
    await transport.declare_exchange(Exchange(name="src", durable=False, auto_delete=True))
    await transport.declare_exchange(
        Exchange(name="mid", type="fanout", durable=False, auto_delete=True)
    )
    await transport.declare_exchange(Exchange(name="unbound", durable=False, auto_delete=True))
    queue = await declare(transport, "q")
    await transport.bind(
        Binding(exchange="src", destination="mid", routing_key="k", to_exchange=True)
    )
    await transport.bind(Binding(exchange="mid", destination=queue, routing_key=""))
    await transport.delete_queue(queue)
    names = broker.exchange_names()
    assert ("src" in names, "mid" in names, "unbound" in names) == (False, False, True)
    assert broker.bindings() == ()


# -- publishing ---------------------------------------------------------------------------------


async def test_invalid_expiration_is_refused(transport: MemoryTransport) -> None:
    queue = await declare(transport, "q")
    for expiration in ("abc", "-5", "1.5", "315360000001"):
        with pytest.raises(PublishError):
            await transport.publish(message(queue, expiration=expiration))
    assert await transport.message_count(queue) == 0


class Colour(str, Enum):  # noqa: UP042 - str() of this kind is its name, not its value
    RED = "red"


class Size(IntEnum):
    BIG = 3


async def test_messages_are_copied_by_value_as_the_wire_does(transport: MemoryTransport) -> None:
    queue = await declare(transport, "q")
    headers: dict[str, Any] = {
        "pair": (1, 2),
        "raw": b"text",
        "when": datetime(2030, 1, 2, 3, 4, 5, 600),
        "colour": Colour.RED,
        "size": Size.BIG,
        "nested": {"list": [1]},
    }
    await transport.publish(message(queue, headers=headers))
    headers["pair"] = "changed"
    headers["nested"]["list"].append(2)

    received = (await take(transport, queue)).properties.headers

    assert received == {
        "pair": [1, 2],
        "raw": "text",
        "when": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        "colour": "red",
        "size": 3,
        "nested": {"list": [1]},
    }
    assert type(received["colour"]) is str
    assert type(received["size"]) is int


async def test_unencodable_headers_are_refused(transport: MemoryTransport) -> None:
    queue = await declare(transport, "q")
    with pytest.raises(TypeError):
        await transport.publish(message(queue, headers={"bad": object()}))
    with pytest.raises(TypeError):
        await transport.publish(message(queue, headers={"huge": 2**64}))


async def test_operations_on_a_closed_transport_raise_unavailable(broker: MemoryBroker) -> None:
    transport = MemoryTransport(broker)
    with pytest.raises(BrokerUnavailable):
        await transport.declare_queue(Queue(name="q"))
    await transport.connect()
    await transport.close()
    await transport.close()  # closing twice is fine
    with pytest.raises(BrokerUnavailable):
        await transport.publish(message("q"))
    with pytest.raises(BrokerUnavailable):
        await transport.get("q")


def test_transports_on_one_broker_share_one_clock(clock: ManualClock) -> None:
    broker = MemoryBroker()
    MemoryTransport(broker, clock=clock)
    assert broker.clock is clock
    MemoryTransport(broker, clock=clock)
    MemoryTransport(broker)
    with pytest.raises(ConfigurationError):
        MemoryTransport(broker, clock=ManualClock())
