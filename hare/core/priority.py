"""Task priorities: the valid values, and the band queues that give them to quorum queues.

Celery's `priority=` runs from 0 to 9 and, on RabbitMQ, higher is more urgent. A classic queue
declared with `x-max-priority` orders by the message's AMQP `priority` property; a quorum
queue cannot (RabbitMQ 3.x has no priorities on quorum queues, 4.0-4.2 two levels served
2:1, not strictly). So on quorum queues hare gives priorities by **bands**: a queue `q`
has a second queue `q.high` for priorities 5-9 (the same split as RabbitMQ 4's quorum
queues: 5 and up is "high"); priorities 0-4, and none, stay in `q`. The publisher routes a
message to its band; the worker consumes both and, when a concurrency slot frees, gives it
to a waiting high-band delivery before a low-band one (`band_rank`).

A band queue is a work queue in every respect: declared like `q`, with its own
`q.high.dead`, its own binding out of the delay ladder (a retry returns to the band it
came from). A queue whose name already ends in `.high` is taken as a band queue and gets
no band of its own.

Pure: names and rules only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hare.errors import ConfigurationError

__all__ = (
    "HIGH_FROM",
    "InvalidPriority",
    "HIGH_SUFFIX",
    "MAX_PRIORITY",
    "admission_ranks",
    "band_queue",
    "band_queues",
    "band_rank",
    "check_max_priority",
    "check_priority",
    "consumed_queues",
    "is_band_queue",
    "prefetch",
)


class InvalidPriority(ConfigurationError):
    """A task priority that is not an int from 0 to 9 (or a bad `queue_max_priority`)."""


#: The highest priority a task may have (Celery's range on RabbitMQ is 0-9).
MAX_PRIORITY = 9
#: The lowest priority of the high band (RabbitMQ 4.0-4.2 quorum queues: "higher than 4").
HIGH_FROM = 5
#: The suffix of a queue's high band.
HIGH_SUFFIX = ".high"
#: The AMQP `priority` property is an octet: what may arrive from another producer.
_WIRE_MAX = 255


def check_priority(value: Any, task: str | None = None, *, from_wire: bool = False) -> int | None:
    """`value` if it is None or an int from 0 to 9, else raise `InvalidPriority`.

    `from_wire`: the value came from another producer (a workflow a Celery client built),
    where RabbitMQ's whole octet (0-255) is accepted, as a classic queue accepts it.
    """
    top = _WIRE_MAX if from_wire else MAX_PRIORITY
    if value is None or (type(value) is int and 0 <= value <= top):
        return value
    where = f"task {task}: " if task else ""
    raise InvalidPriority(
        f"{where}priority must be an int from 0 (least urgent) to {top} (most urgent), "
        f"not {value!r:.60}"
    )


def check_max_priority(value: Any) -> int | None:
    """`queue_max_priority` (a classic queue's `x-max-priority`): None or 1 to 255."""
    if value is None or (type(value) is int and 1 <= value <= _WIRE_MAX):
        return value
    raise InvalidPriority(
        f"queue_max_priority must be an int from 1 to {_WIRE_MAX} (RabbitMQ's x-max-priority; "
        f"Celery's tasks use 0-{MAX_PRIORITY}, so 10 is usual), not {value!r:.60}"
    )


def is_band_queue(queue: str) -> bool:
    """Whether `queue` is a high band (its name ends in `.high`)."""
    return queue.endswith(HIGH_SUFFIX)


def band_queue(queue: str, priority: int | None) -> str:
    """The queue a message for `queue` with `priority` goes to.

    A band queue keeps its messages (a retry returns to the band it came from, whatever
    its priority); a priority of 5 or more goes to `<queue>.high`; anything else to `queue`.
    """
    if priority is None or priority < HIGH_FROM or is_band_queue(queue):
        return queue
    return queue + HIGH_SUFFIX


def band_queues(queue: str) -> tuple[str, ...]:
    """The queues a worker of `queue` consumes: `queue` and its high band (or only `queue`,
    when it is a band itself)."""
    return (queue,) if is_band_queue(queue) else (queue, queue + HIGH_SUFFIX)


def band_rank(queue: str) -> int:
    """How soon a delivery from `queue` is admitted among those waiting for a slot: a high
    band's (1) before any other (0)."""
    return 1 if is_band_queue(queue) else 0


def consumed_queues(
    queues: Iterable[str], bands: bool, without: Iterable[str] = ()
) -> tuple[str, ...]:
    """The queues a worker of `queues` consumes: with `bands`, each followed by its band,
    except the queues `without` one (an event handler's queue: events carry no priority)."""
    if not bands:
        return tuple(dict.fromkeys(queues))
    alone = frozenset(without)
    return tuple(
        dict.fromkeys(
            band
            for queue in queues
            for band in ((queue,) if queue in alone else band_queues(queue))
        )
    )


def admission_ranks(queues: Iterable[str], bands: bool) -> dict[str, int]:
    """Each consumed queue's rank for a free concurrency slot (all 0 without bands)."""
    return {queue: band_rank(queue) if bands else 0 for queue in queues}


def prefetch(queue: str, concurrency: int, bands: bool) -> int:
    """A worker's prefetch for `queue`: its concurrency, and twice that for a high band.

    When a high task ends and acks, the broker's next high delivery is still on its way while
    the freed slot is handed out: without deliveries of its own waiting in the worker, a high
    band with a backlog would lose every other slot to the low band's waiting deliveries.
    With `concurrency` more of them held, a freed slot finds a high delivery waiting.
    """
    return 2 * concurrency if bands and is_band_queue(queue) else concurrency
