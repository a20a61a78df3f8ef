"""The delay ladder: delays of any length carried by the broker, never held by a worker.

32 levels of fixed-TTL queues; level *i* holds a message for `UNIT_MS · 2^i` ms and then
dead-letters it to the exchange of level *i−1* (level 0: the delivery exchange). A delay of
*n* units travels with the 32 bits of *n* in its routing key, followed by the destination
queue: each level's exchange parks the message in its queue when its bit is 1 and passes it
straight down when it is 0. So the hops are the set bits of *n*, and their TTLs sum to the
delay (research/delays.md §4.1; the NServiceBus v2 design with a 100 ms unit).

Facts this relies on, measured on RabbitMQ 3.10:

* A queue-level TTL expires messages in FIFO order, so no message waits behind a longer one
  (per-message TTL would: expiry happens only at the head).
* Level queues are quorum queues with `at-least-once` dead-lettering, which only takes effect
  together with `x-overflow=reject-publish`; a message leaves a level only once the next one
  confirmed it.
* An at-least-once level whose dead letters are unroutable jams for everyone once 32 of them
  are in flight, so every ladder exchange has an alternate exchange into a parking queue.
* Destinations bind with exactly 32 `*` words and their name (never `#.name`), so the queues
  `b` and `a.b` cannot receive each other's delayed messages.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from hare.core.topology import (
    UNREACHABLE_DELIVERY_LIMIT,
    Binding,
    Exchange,
    Queue,
    validate_queue_name,
)
from hare.errors import DelayTooLong

__all__ = (
    "DELIVER_EXCHANGE",
    "LEGACY_PREFIXES",
    "LEVELS",
    "MAX_DELAY_SECONDS",
    "MAX_UNITS",
    "PARKING_EXCHANGE",
    "PARKING_QUEUE",
    "PREFIX",
    "LEAD_SECONDS",
    "UNIT_MS",
    "LadderRoute",
    "destination_binding",
    "ladder_topology",
    "level_name",
    "level_ttl_ms",
    "route",
    "units_for",
)

#: Bump the version segment whenever a level's arguments change: RabbitMQ refuses to redeclare
#: a queue with other arguments, so a changed ladder must be a new set of objects. v2 gave every
#: queue an explicit delivery limit: on RabbitMQ 4.x a quorum queue without one dead-letters a
#: message returned 20 times, so twenty `hare delayed` browses sent a v1 message on down the
#: ladder early (measured on 4.0.5).
PREFIX = "hare.delay.v2"
#: Earlier ladders: nothing is published to them any more, but what they hold still runs down
#: them to its queue (their bindings stay), and `hare delayed` still shows it.
LEGACY_PREFIXES = ("hare.delay.v1",)
UNIT_MS = 100
LEVELS = 32
MAX_UNITS = 2**LEVELS - 1
MAX_DELAY_SECONDS = MAX_UNITS * UNIT_MS / 1000
#: How much earlier than due a message is routed to leave the ladder, so that the time its
#: dead-letter hops take (each a log commit of a quorum level, then at-least-once
#: dead-lettering into the next) is spent before it is due, not after. The worker waits out the
#: rest, as it waits out the sub-unit remainder: it holds a delayed message for under 350 ms.
#: Measured on a busy 2-core machine, delays of 1-10 s: with no lead, arrival lagged the due
#: time by p50 48 ms, p99 146 ms. With one unit (100 ms), 6 of 13 runs on a classic work queue
#: had a p99 lateness over 50 ms (53-394 ms), and of 4 runs whose arrivals were recorded, 2 had
#: some after due (up to 105 ms). With 250 ms, 4 runs on a classic work queue: p99 1.8-16 ms,
#: every arrival at least 90 ms before due. (A quorum queue's own stalls can be longer still:
#: docs/benchmarks.md.) A held message counts against the worker's prefetch, so a longer lead
#: also means more of it is taken by tasks that are not due yet.
LEAD_SECONDS = 2.5 * UNIT_MS / 1000
DELIVER_EXCHANGE = f"{PREFIX}.deliver"
PARKING_EXCHANGE = f"{PREFIX}.unroutable"
PARKING_QUEUE = f"{PREFIX}.unroutable"


@dataclass(frozen=True, slots=True)
class LadderRoute:
    """Where to publish a delayed message: the highest set bit's exchange, with its key."""

    units: int
    exchange: str
    routing_key: str

    @property
    def levels(self) -> tuple[int, ...]:
        """The levels the message waits in, highest first (one per set bit)."""
        return tuple(i for i in reversed(range(LEVELS)) if self.units >> i & 1)


def level_name(level: int, prefix: str = PREFIX) -> str:
    """The name of level `level`'s exchange and of its queue (in the ladder `prefix`)."""
    return f"{prefix}.L{level:02d}"


def level_ttl_ms(level: int) -> int:
    """How long level `level` holds a message."""
    return UNIT_MS << level


def units_for(seconds: float) -> int:
    """Whole ladder units in `seconds`, rounded down (the worker waits out the remainder).

    >>> units_for(0.25), units_for(1), units_for(0.099)
    (2, 10, 0)
    """
    if seconds != seconds or seconds < 0:  # NaN or negative
        return 0
    # Round to whole milliseconds first so 0.3 s (0.29999... in binary) is 3 units, not 2.
    milliseconds = round(seconds * 1000)
    return milliseconds // UNIT_MS


def route(seconds: float, queue: str) -> LadderRoute | None:
    """The ladder route for a delay of `seconds` to `queue`; `None` below one unit.

    Raises `DelayTooLong` beyond `MAX_DELAY_SECONDS`: a delay is refused at publish time,
    never silently truncated.

    >>> r = route(1.0, "emails")
    >>> r.exchange, r.levels, r.routing_key.split(".")[-1]
    ('hare.delay.v2.L03', (3, 1), 'emails')
    """
    if seconds > MAX_DELAY_SECONDS:
        raise DelayTooLong(seconds, MAX_DELAY_SECONDS)
    units = units_for(seconds)
    if units == 0:
        return None
    validate_queue_name(queue)
    bits = ".".join("1" if units >> i & 1 else "0" for i in reversed(range(LEVELS)))
    return LadderRoute(
        units=units,
        exchange=level_name(units.bit_length() - 1),
        routing_key=f"{bits}.{queue}",
    )


def destination_binding(queue: str) -> Binding:
    """The binding that lets delayed messages for `queue` out of the ladder into it."""
    return Binding(exchange=DELIVER_EXCHANGE, destination=queue, routing_key="*." * LEVELS + queue)


def ladder_topology() -> tuple[list[Exchange], list[Queue], list[Binding]]:
    """Every exchange, queue and binding of the ladder, in the order to declare them."""
    parking_args = {"alternate-exchange": PARKING_EXCHANGE}
    exchanges = [
        Exchange(name=PARKING_EXCHANGE, type="fanout"),
        Exchange(name=DELIVER_EXCHANGE, type="topic", arguments=parking_args),
    ]
    limit = {"x-delivery-limit": UNREACHABLE_DELIVERY_LIMIT}  # browses return messages
    queues = [Queue(name=PARKING_QUEUE, arguments={"x-queue-type": "quorum", **limit})]
    bindings = [Binding(exchange=PARKING_EXCHANGE, destination=PARKING_QUEUE, routing_key="")]
    for level in range(LEVELS):
        name = level_name(level)
        below = level_name(level - 1) if level else DELIVER_EXCHANGE
        exchanges.append(Exchange(name=name, type="topic", arguments=parking_args))
        queues.append(
            Queue(
                name=name,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": level_ttl_ms(level),
                    "x-overflow": "reject-publish",
                    "x-dead-letter-strategy": "at-least-once",
                    "x-dead-letter-exchange": below,
                    **limit,
                },
            )
        )
        skip = "*." * (LEVELS - 1 - level)
        bindings.append(Binding(exchange=name, destination=name, routing_key=f"{skip}1.#"))
        bindings.append(
            Binding(exchange=name, destination=below, routing_key=f"{skip}0.#", to_exchange=True)
        )
    return exchanges, queues, bindings
