"""A queue the worker is told to consume that some other client declared otherwise.

hare declares its queues with its own arguments (queue type, delivery limit, dead-lettering).
A queue that exists with other arguments (a Celery deployment's classic queue, one an operator
made) is consumed as it is, not redeclared: `adopt` says so once per queue, and from then on
the worker counts that queue's redeliveries itself. A stream cannot be a work queue at all.
"""

from __future__ import annotations

import logging

from hare.core.settings import Settings
from hare.core.topology import DEAD_SUFFIX
from hare.errors import NotSupportedError
from hare.publisher import Publisher

__all__ = ("adopt",)

logger = logging.getLogger("hare.worker")


async def adopt(
    publisher: Publisher,
    queue: str,
    settings: Settings,
    self_counted: set[str],
    adopted: set[str],
) -> None:
    """Make sure `queue` exists; consume one that another client declared as it is (added to
    `self_counted`; warned about once, recorded in `adopted`, as is the check of its
    dead-letter queue)."""
    difference = await publisher.adopt_queue(queue)
    if queue + DEAD_SUFFIX not in adopted:  # checked once per worker: it closes a channel
        adopted.add(queue + DEAD_SUFFIX)
        await _check_dead_letter_queue(publisher, queue, settings)
    if difference is None:
        return
    if "stream" in difference and "x-queue-type" in difference:
        raise NotSupportedError(
            f"consuming stream {queue!r} as a work queue",
            "a stream cannot requeue or dead-letter a message; consume a classic or quorum queue",
        )
    self_counted.add(queue)
    if queue in adopted:
        return
    adopted.add(queue)
    logger.warning(
        "queue %r exists with other arguments than hare's (%s): consuming it as it is. "
        "hare's broker-side settings (queue type %s, delivery limit, dead-lettering by "
        "the broker) do not apply to it: the worker counts redeliveries itself (a message "
        "its worker went away from %d times is dead-lettered) and dead-letters into %r.",
        queue,
        difference,
        settings.queue_type,
        settings.delivery_limit,
        queue + DEAD_SUFFIX,
    )


async def _check_dead_letter_queue(publisher: Publisher, queue: str, settings: Settings) -> None:
    """Warn once when `<queue>.dead` is not what hare declares (an older hare's classic one)."""
    difference = await publisher.dead_letter_difference(queue)
    if difference is None:
        return
    logger.warning(
        "dead-letter queue %r exists with other arguments than hare's (%s): using it as it is. "
        "hare declares it as a %s queue; a classic one lives on one node, and a quorum queue "
        "loses what it dead-letters while that node is down. To have hare declare it anew, "
        "replay or purge it (hare dlq), then delete it (rabbitmqctl delete_queue).",
        queue + DEAD_SUFFIX,
        difference,
        settings.queue_type,
    )
