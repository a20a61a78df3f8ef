"""What waits in the delay ladder: each delayed message, where it goes and when it is due.

The ladder's levels are quorum queues with a fixed TTL (`hare.core.ladder`). A level is read
as `hare.dlq` reads a dead-letter queue: basic.get on a connection of its own, nothing acked,
then the connection closed, which hands every message back in its place and order. A message
cannot expire while it is held, so a read delays the messages it holds by the time it takes
(milliseconds for a few hundred): `limit` bounds how many of each level are held, and each
level is handed back before the next one is read. Nothing here prints; `hare.cli.delayed`
and `hare.cli.status` do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hare.app import Hare
from hare.core import ladder, protocol
from hare.core.codec import accepted_content_types
from hare.core.envelope import Delivery
from hare.core.headers import ETA_HEADER
from hare.core.message import Message
from hare.errors import MessageError, NotFound
from hare.transport.base import Transport

__all__ = ("Delayed", "browse", "depths", "ladder_queues")

#: Called with (messages read, messages in the levels being read).
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Delayed:
    """One delayed message as it waits in the ladder."""

    place: str  # the level's queue, or the parking queue of unroutable ones
    queue: str  # the work queue it goes to when due
    task: str | None
    id: str
    due: datetime | None
    message: Message | None  # None when the body cannot be decoded
    delivery: Delivery

    @property
    def parked(self) -> bool:
        """Whether it sits in the parking queue: due, but its work queue was not bound."""
        return self.place in _PARKING_QUEUES


#: The parking queue of the ladder and of each earlier ladder (`PREFIX.unroutable`).
_PARKING_QUEUES = frozenset(
    f"{prefix}.unroutable" for prefix in (ladder.PREFIX, *ladder.LEGACY_PREFIXES)
)


def ladder_queues() -> list[str]:
    """Every queue of the ladder, lowest level first, then the parking queue; then those of
    earlier ladders, which may still hold messages."""
    return [
        name
        for prefix in (ladder.PREFIX, *ladder.LEGACY_PREFIXES)
        for name in [ladder.level_name(level, prefix) for level in range(ladder.LEVELS)]
        + [f"{prefix}.unroutable"]
    ]


async def depths(transport: Transport) -> dict[str, int]:
    """Messages in each ladder queue that holds any; empty when the ladder was never declared."""
    found = {}
    for queue in ladder_queues():
        try:
            count = await transport.message_count(queue)
        except NotFound:
            continue
        if count:
            found[queue] = count
    return found


async def browse(
    app: Hare,
    *,
    limit: int | None,
    stop: Callable[[Delayed], bool] | None = None,
    progress: Progress | None = None,
) -> tuple[list[Delayed], dict[str, int]]:
    """Read up to `limit` messages of each ladder queue (all with None), stopping at the first
    for which `stop` is true; the messages read and the depth of each queue."""
    probe = app.make_transport()
    await probe.connect()
    try:
        found = await depths(probe)
    finally:
        await probe.close()
    accept = accepted_content_types(app.settings.accept_content)
    total = sum(min(n, limit) if limit is not None else n for n in found.values())
    read: list[Delayed] = []
    for queue, depth in found.items():
        transport = app.make_transport()
        await transport.connect()
        try:  # closing hands back every message read, in place
            for _ in range(depth if limit is None else min(depth, limit)):
                delivery = await transport.get(queue)
                if delivery is None:
                    break
                read.append(_delayed(delivery, accept))
                if progress is not None:
                    progress(len(read), total)
                if stop is not None and stop(read[-1]):
                    return read, found
        finally:
            await transport.close()
    return read, found


def _delayed(delivery: Delivery, accept: frozenset[str]) -> Delayed:
    headers = delivery.properties.headers
    words = delivery.routing_key.split(".")
    queue = ".".join(words[ladder.LEVELS :]) if len(words) > ladder.LEVELS else "?"
    try:
        message: Message | None = protocol.decode(delivery.body, delivery.properties, accept=accept)
    except MessageError:
        message = None
    due = message.eta if message is not None else None
    if due is None and isinstance(headers.get(ETA_HEADER), int):
        due = datetime.fromtimestamp(headers[ETA_HEADER] / 1000, UTC)
    task = message.task if message is not None else _text(headers.get("task"))
    task_id = message.id if message is not None else _text(headers.get("id"))
    return Delayed(
        place=delivery.queue,
        queue=queue,
        task=task,
        id=task_id or delivery.properties.correlation_id or "?",
        due=due,
        message=message,
        delivery=delivery,
    )


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None
