"""Dead letters: a message that cannot or must not run, kept with the reason why.

The worker dead-letters by publishing a copy to `<queue>.dead` (waiting for the confirm) and
only then acking the original, so a dead letter is never lost between the two. The copy keeps
the body and properties as they arrived and adds `hare-dead-*` headers; the `hare dlq` tools read
them back. This works on classic and quorum queues alike, unlike broker-side dead-lettering.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from hare.core.topology import DEAD_SUFFIX
from hare.transport.base import Delivery, Envelope

__all__ = (
    "DEATH_HEADERS",
    "DeadLetter",
    "dead_letter_envelope",
    "strip_death_headers",
)

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

# Header frames must fit in one AMQP frame (128 KiB by default); keep diagnostics bounded.
_MAX_TRACEBACK = 16_000
_MAX_DETAIL = 2_000


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """Why a delivery is being dead-lettered."""

    #: A short machine word: malformed, unknown-task, rejected, failed, content-type-refused...
    reason: str
    #: A human sentence: the exception message, the Reject reason, the decoding problem.
    detail: str = ""
    exception_type: str | None = None
    traceback: str | None = None
    #: How many times the task ran (0 when it never could).
    attempts: int = 0


def strip_death_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `headers` without RabbitMQ's dead-letter bookkeeping."""
    return {k: v for k, v in headers.items() if k not in DEATH_HEADERS}


def dead_letter_envelope(delivery: Delivery, dead: DeadLetter, *, now: float) -> Envelope:
    """The envelope that carries `delivery` into its queue's dead-letter queue."""
    headers = strip_death_headers(delivery.properties.headers)
    headers.update(
        {
            "hare-dead-reason": dead.reason,
            "hare-dead-detail": _clip(dead.detail, _MAX_DETAIL),
            "hare-dead-exception": dead.exception_type,
            "hare-dead-traceback": _clip(dead.traceback, _MAX_TRACEBACK),
            "hare-dead-queue": delivery.queue,
            "hare-dead-attempts": dead.attempts,
            "hare-dead-at": int(now * 1000),
        }
    )
    # A dead letter must not expire: drop the per-message TTL that `expires` put there.
    properties = replace(delivery.properties, headers=headers, expiration=None, delivery_mode=2)
    return Envelope(
        exchange="",
        routing_key=delivery.queue + DEAD_SUFFIX,
        body=delivery.body,
        properties=properties,
    )


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit // 2] + "\n...[clipped]...\n" + text[-limit // 2 :]
