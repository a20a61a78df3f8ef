"""One queue of the in-memory broker, and the headers RabbitMQ writes when it dead-letters.

A `MemoryQueue` is a deque of ready messages with the bookkeeping RabbitMQ keeps per queue:
ready bytes, publish order (for requeue), head expiry, the length limit, and its consumers in
round-robin order. It does not route: the broker in `memory_broker.py` does that. Nothing here
is public API.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from hare.core.envelope import Properties
from hare.core.topology import Queue
from hare.transport.memory.topology import QueueSettings

__all__ = (
    "MemoryQueue",
    "StoredMessage",
    "Subscriber",
    "copy_headers",
    "dead_letter_properties",
    "is_dead_letter_cycle",
)


@dataclass(slots=True, eq=False)
class StoredMessage:
    """A message held by one queue (each queue a message is routed to holds its own)."""

    body: bytes
    properties: Properties
    #: Where it was published (or dead-lettered) to; a delivery reports these.
    exchange: str
    routing_key: str
    #: The message's own `expiration`, parsed; the queue's TTL is applied on arrival.
    ttl_ms: int | None = None
    #: Publish order in the queue; in a stream, the message's offset.
    seq: int = 0
    #: When it reached the queue (ms on the broker's clock).
    arrived_ms: int = 0
    expires_at_ms: int | None = None
    redelivered: bool = False
    #: How many times the message came back unsettled (a quorum queue's delivery count).
    returns: int = 0


class Subscriber(Protocol):
    """A consumer as the broker sees it."""

    def has_capacity(self) -> bool:
        """Whether it may take another delivery now (prefetch not reached, not cancelled)."""
        ...

    def deliver(self, queue: MemoryQueue, message: StoredMessage) -> None:
        """Hand `message` over; it is now unsettled until acked or rejected."""
        ...

    def on_queue_deleted(self) -> None:
        """The queue was deleted: the broker cancelled the subscription."""
        ...


class MemoryQueue:
    """A queue: its declaration, its ready messages and its consumers."""

    def __init__(self, spec: Queue, settings: QueueSettings, owner: object | None) -> None:
        self.spec = spec
        self.settings = settings
        #: The connection an exclusive queue belongs to (`None` for a shared queue).
        self.owner = owner
        self.ready: deque[StoredMessage] = deque()
        self.ready_bytes = 0
        self.unsettled = 0
        self.subscribers: list[Subscriber] = []
        self.had_subscribers = False
        self.deleted = False
        #: Last time it was declared, read with basic.get or left by its last consumer: an
        #: `x-expires` queue is deleted once it has been unused for that long.
        self.last_used_ms = 0
        self._seqs = itertools.count(1)
        self._turn = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def head_deadline(self) -> int | None:
        """When the message at the head expires (ms on the broker's clock), if it does."""
        return self.ready[0].expires_at_ms if self.ready else None

    def idle_deadline(self) -> int | None:
        """When the queue is deleted for being unused (`x-expires`), if it is unused now."""
        expires = self.settings.expires_ms
        if expires is None or self.subscribers:
            return None
        return self.last_used_ms + expires

    def deadline(self) -> int | None:
        """The earliest time the broker's timer must look at this queue."""
        times = [t for t in (self.head_deadline(), self.idle_deadline()) if t is not None]
        return min(times) if times else None

    def refuses(self, message: StoredMessage) -> bool:
        """Whether `reject-publish` turns `message` away: only ready messages count.

        A classic queue refuses once the message would take it over its limit; a quorum queue
        checks the length before the message is added, so it overshoots by one (docs:
        maxlength; measured on 3.10.8: classic ack, nack; quorum ack, ack, nack).
        """
        if self.settings.overflow == "drop-head":
            return False
        length, size = len(self.ready), self.ready_bytes
        if not self.settings.quorum:
            length, size = length + 1, size + len(message.body)
        limit, limit_bytes = self.settings.max_length, self.settings.max_length_bytes
        return (limit is not None and length > limit) or (
            limit_bytes is not None and size > limit_bytes
        )

    def append(self, message: StoredMessage, now_ms: int) -> None:
        """Take a newly routed message at the tail; its TTL starts now."""
        message.seq = next(self._seqs)
        message.arrived_ms = now_ms
        # The lower of the queue's x-message-ttl and the message's expiration wins (docs: ttl).
        ttls = [t for t in (self.settings.message_ttl_ms, message.ttl_ms) if t is not None]
        message.expires_at_ms = now_ms + min(ttls) if ttls else None
        self.ready.append(message)
        self.ready_bytes += len(message.body)

    def over_limit(self) -> list[StoredMessage]:
        """Drop from the head what takes a `drop-head` queue over its limits."""
        dropped: list[StoredMessage] = []
        if self.settings.overflow != "drop-head":
            return dropped
        limit, limit_bytes = self.settings.max_length, self.settings.max_length_bytes
        while self.ready and (
            (limit is not None and len(self.ready) > limit)
            or (limit_bytes is not None and self.ready_bytes > limit_bytes)
        ):
            dropped.append(self.take())
        return dropped

    def take(self) -> StoredMessage:
        """Remove the head (the caller checked there is one)."""
        message = self.ready.popleft()
        self.ready_bytes -= len(message.body)
        return message

    def take_expired(self, now_ms: int) -> list[StoredMessage]:
        """Remove the expired messages at the head, and only there.

        RabbitMQ expires a message only once it reaches the head, so a message with a long
        expiration blocks shorter ones behind it (docs: ttl, "Per-message TTL applied
        retroactively"; research/delays.md §3.1).
        """
        expired: list[StoredMessage] = []
        while self.ready and (deadline := self.ready[0].expires_at_ms) is not None:
            if deadline > now_ms:
                break
            expired.append(self.take())
        return expired

    def requeue(self, message: StoredMessage) -> None:
        """Put back a message that came back unsettled (reject with requeue, a closed channel).

        A classic queue puts it back where it was in publish order, that is ahead of every
        ready message; a quorum queue on 3.10 returns it to the back (both measured on
        3.10.8). The message keeps its expiry deadline (research/delays.md §3.9-j).
        """
        message.redelivered = True
        if self.settings.quorum:
            self.ready.append(message)
        else:
            position = bisect.bisect_left(self.ready, message.seq, key=_seq)
            self.ready.insert(position, message)
        self.ready_bytes += len(message.body)

    def purge(self) -> int:
        count = len(self.ready)
        self.ready.clear()
        self.ready_bytes = 0
        return count

    def dispatch(self) -> None:
        """Hand ready messages to consumers with room, in round-robin order."""
        while self.ready and (subscriber := self.next_subscriber()) is not None:
            message = self.take()
            self.unsettled += 1
            subscriber.deliver(self, message)

    def subscribe(self, subscriber: Subscriber, offset: object = None) -> None:
        """Add a consumer (`offset` is for streams; the broker checked it is `None` here)."""
        del offset
        self.subscribers.append(subscriber)
        self.had_subscribers = True

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def next_subscriber(self) -> Subscriber | None:
        """The next consumer in round-robin order that can take a delivery now."""
        if self.settings.single_active_consumer:
            # Single active consumer: the first registered one gets everything (docs: consumers).
            first = self.subscribers[0] if self.subscribers else None
            return first if first is not None and first.has_capacity() else None
        count = len(self.subscribers)
        for offset in range(count):
            index = (self._turn + offset) % count
            subscriber = self.subscribers[index]
            if subscriber.has_capacity():
                self._turn = index + 1
                return subscriber
        return None


def _seq(message: StoredMessage) -> int:
    return message.seq


def dead_letter_properties(
    properties: Properties,
    *,
    queue: str,
    reason: str,
    exchange: str,
    routing_key: str,
    time: datetime,
) -> Properties:
    """The properties of a message dead-lettered from `queue`, as RabbitMQ 3.10 writes them.

    `x-death` keeps one entry per `{queue, reason}`: a repeat moves that entry to the front and
    increments its `count`, leaving its other fields as they were; a new pair is prepended.
    `x-first-death-*` are written only with the first entry. The message's own `expiration`
    moves to `original-expiration` so it does not expire again downstream (docs: dlx;
    `rabbit_dead_letter:make_msg/5`; research/delays.md §3.2).
    """
    headers = dict(properties.headers)
    entry: dict[str, Any] = {
        "count": 1,
        "reason": reason,
        "queue": queue,
        "time": time,
        "exchange": exchange,
        "routing-keys": [routing_key],
    }
    if properties.expiration is not None:
        entry["original-expiration"] = properties.expiration
    deaths = headers.get("x-death")
    if isinstance(deaths, list):
        others: list[Any] = []
        for old in deaths:
            if isinstance(old, Mapping) and (old.get("queue"), old.get("reason")) == (
                queue,
                reason,
            ):
                entry = dict(old)
                entry["count"] = int(old.get("count", 0)) + 1
            else:
                others.append(old)
        headers["x-death"] = [entry, *others]
    else:
        headers["x-first-death-reason"] = reason
        headers["x-first-death-queue"] = queue
        headers["x-first-death-exchange"] = exchange
        headers["x-death"] = [entry]
    return replace(properties, headers=headers, expiration=None)


def is_dead_letter_cycle(target: str, properties: Properties, reason: str) -> bool:
    """Whether dead-lettering into `target` closes a fully automatic cycle.

    RabbitMQ drops such a message for that queue: it already died in `target` and no death
    since then was a `rejected` (docs: dlx, "Dead-letter cycle"; `rabbit_dead_letter:is_cycle`).
    """
    if reason == "rejected":
        return False
    deaths = properties.headers.get("x-death")
    if not isinstance(deaths, list):
        return False
    for death in deaths:
        if not isinstance(death, Mapping) or death.get("reason") == "rejected":
            return False
        if death.get("queue") == target:
            return True
    return False


def copy_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `headers` as it comes back from RabbitMQ through the AMQP codecs.

    Tuples come back as lists, mappings as dicts, UTF-8 bytes as str, datetimes as whole
    seconds in UTC, enum members as their plain values: a message is copied by value, so a
    publisher that changes its dict afterwards cannot reach into the queue.
    """
    return {_key(key): _wire_value(value) for key, value in headers.items()}


def _key(key: str | bytes) -> str:
    raw = key if isinstance(key, bytes) else key.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "surrogateescape")


def _wire_value(value: Any) -> Any:
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        # The text itself, as the wire carries it (str() of a `(str, Enum)` is its name).
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    if isinstance(value, Mapping):
        return copy_headers(value)
    if isinstance(value, list | tuple):
        return [_wire_value(item) for item in value]
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return datetime.fromtimestamp(int(moment.timestamp()), tz=UTC)
    if isinstance(value, Decimal):
        return value
    return value  # the encoder check in the broker has already refused anything else
