"""Every message header hare writes or reads besides Celery's own: one name, one place.

hare's headers start with `hare-`; Celery's protocol v2 headers are `hare.core.protocol`'s.
RabbitMQ's dead-letter bookkeeping (`x-death`, ...) is listed here too, because hare strips it.
"""

from __future__ import annotations

#: When a delayed message is due, in epoch milliseconds (set by the publisher's ladder route).
ETA_HEADER = "hare-eta"
#: How many times a classic queue's delivery was requeued (quorum queues count for hare).
REDELIVERIES_HEADER = "hare-redeliveries"
#: How many times a dead letter was replayed (`hare dlq replay`).
REPLAYS_HEADER = "hare-replays"
#: On an emitted event (`hare.events`): the event's name, also its routing key.
EVENT_HEADER = "hare-event"
#: On a task a tick started: `[schedule, occurrence_ms]`, to release the tick's slot.
PERIODIC_HEADER = "hare-periodic"

# A dead letter: why it died, where, after how many runs, and when.
DEAD_PREFIX = "hare-dead-"
DEAD_REASON = "hare-dead-reason"
DEAD_DETAIL = "hare-dead-detail"
DEAD_EXCEPTION = "hare-dead-exception"
DEAD_TRACEBACK = "hare-dead-traceback"
DEAD_QUEUE = "hare-dead-queue"
DEAD_ATTEMPTS = "hare-dead-attempts"
DEAD_AT = "hare-dead-at"

# A periodic tick (`hare.periodic.ticks`): which occurrence of which schedule it offers.
TICK_KIND = "hare-tick"
TICK_APP = "hare-app"
TICK_SCHEDULE = "hare-schedule"
TICK_OCCURRENCE = "hare-occurrence"
TICK_SPEC = "hare-spec"
TICK_SPEC_HASH = "hare-spec-hash"
TICK_GENERATION = "hare-generation"
TICK_TASK = "hare-task"
TICK_QUEUE = "hare-queue"
#: On a leadership token in the tick queue: the scheduler process that published it, and its
#: serial number there (`hare.periodic.election`).
TICK_POD = "hare-pod"
TICK_SERIAL = "hare-serial"

#: Headers RabbitMQ adds when it dead-letters. A message republished with them still on is
#: silently dropped by RabbitMQ 3.10-3.13's dead-letter cycle detection the next time it
#: crosses a queue named in them (research/delays.md §3.2), so hare never forwards them.
DEATH_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-first-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-last-death-exchange",
    }
)
