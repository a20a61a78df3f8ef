"""A stream of the in-memory broker: an append-only log each consumer reads from an offset.

RabbitMQ 3.10's streams over AMQP 0-9-1, as far as hare uses them (measured on 3.10.8):

* a consumer needs a prefetch (basic.qos) and manual acks, which only return credit: the
  messages stay for every other reader, and a reject requeues nothing;
* `x-stream-offset` says where a consumer starts: "first", "next" (the default) or an offset
  number; every delivery carries its offset in the `x-stream-offset` header;
* `x-max-age` drops messages once they are older than that (RabbitMQ drops whole segments, so
  later than the age; never earlier);
* basic.get and queue.purge are refused (RabbitMQ closes the connection with 540).

Nothing here is public API.
"""

from __future__ import annotations

from typing import Any

from hare.core.topology import Queue
from hare.errors import NotSupportedError
from hare.transport.memory.queue import MemoryQueue, StoredMessage, Subscriber
from hare.transport.memory.topology import QueueSettings

__all__ = ("StreamQueue",)


class StreamQueue(MemoryQueue):
    """A queue declared with `x-queue-type: stream`."""

    def __init__(self, spec: Queue, settings: QueueSettings) -> None:
        super().__init__(spec, settings, None)
        #: The offset of the oldest message kept, and the one the next message will get.
        self.first_offset = 0
        self.next_offset = 0
        self._cursors: dict[Subscriber, int] = {}

    def head_deadline(self) -> int | None:
        return None  # nothing in a stream expires by TTL

    def refuses(self, message: StoredMessage) -> bool:
        return False

    def append(self, message: StoredMessage, now_ms: int) -> None:
        message.seq = self.next_offset
        message.arrived_ms = now_ms
        message.expires_at_ms = None
        self.next_offset += 1
        self.ready.append(message)
        self.ready_bytes += len(message.body)
        self.retain(now_ms)

    def retain(self, now_ms: int) -> None:
        """Drop the messages older than `x-max-age`."""
        age = self.settings.max_age_ms
        while age is not None and self.ready and self.ready[0].arrived_ms + age <= now_ms:
            self.take()
        self.first_offset = self.ready[0].seq if self.ready else self.next_offset

    def over_limit(self) -> list[StoredMessage]:
        return []

    def take_expired(self, now_ms: int) -> list[StoredMessage]:
        return []

    def dispatch(self) -> None:
        """Hand each consumer the messages after its cursor, as far as its prefetch allows."""
        for subscriber in list(self.subscribers):
            cursor = max(self._cursors.get(subscriber, self.next_offset), self.first_offset)
            while cursor < self.next_offset and subscriber.has_capacity():
                message = self.ready[cursor - self.first_offset]
                cursor += 1
                self._cursors[subscriber] = cursor
                self.unsettled += 1
                subscriber.deliver(self, message)
            self._cursors[subscriber] = cursor

    def subscribe(self, subscriber: Subscriber, offset: object = None) -> None:
        """Add a consumer that starts at `offset` (an `x-stream-offset` value)."""
        self._cursors[subscriber] = self._start(offset)
        super().subscribe(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        super().unsubscribe(subscriber)
        self._cursors.pop(subscriber, None)

    def _start(self, offset: Any) -> int:
        if offset is None or offset == "next":
            return self.next_offset
        if offset == "first":
            return self.first_offset
        if isinstance(offset, int) and not isinstance(offset, bool):
            return max(offset, self.first_offset)
        raise NotSupportedError(
            f"x-stream-offset={offset!r}",
            "the memory transport starts a stream consumer at 'first', 'next' or an offset",
        )
