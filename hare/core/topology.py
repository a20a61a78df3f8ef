"""Exchanges, queues and bindings as data, and the names hare gives them.

Pure: building a declaration does no I/O; a transport applies it. Names are deterministic so
that every process of a fleet declares the same objects with the same arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from hare.errors import ConfigurationError, NotSupportedError

__all__ = (
    "DEAD_SUFFIX",
    "Binding",
    "Exchange",
    "Queue",
    "QueueType",
    "UNREACHABLE_DELIVERY_LIMIT",
    "consumer_arguments",
    "dead_letter_queue",
    "validate_queue_name",
    "work_queue",
)

QueueType = Literal["quorum", "classic"]

#: Suffix of the queue that holds a work queue's dead letters.
DEAD_SUFFIX = ".dead"

#: AMQP short strings (queue names, routing keys) are at most 255 bytes. The delay ladder
#: spends 64 bytes of its routing keys on the delay bits, so a work queue name may use 191.
MAX_QUEUE_NAME_BYTES = 191

#: The delivery limit of quorum queues that hare reads without consuming (dead letters, delay
#: ladder levels): explicit, so that RabbitMQ 4.x's default of 20 does not apply, and finite,
#: because -1 means "unlimited" only on 4.x (3.10 drops the message at its first return).
UNREACHABLE_DELIVERY_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Queue:
    """A queue declaration."""

    name: str
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """An exchange declaration."""

    name: str
    type: Literal["direct", "topic", "fanout", "headers"] = "direct"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """Route messages from `exchange` to a queue (or, with `to_exchange`, another exchange)."""

    exchange: str
    destination: str
    routing_key: str
    to_exchange: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)


#: `x-stream-offset` as an interval back from now ("1D", "12h"), as RabbitMQ spells it.
_INTERVAL = re.compile(r"[0-9]+[YMDhms]")


def consumer_arguments(arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check the arguments of a basic.consume; return them as a plain dict.

    hare knows one: `x-stream-offset`, where a stream consumer starts: "first", "last",
    "next", an offset (int >= 0), a `datetime`, or an interval such as "1D". Anything else
    is refused here, before RabbitMQ sees it: it closes the whole connection (INTERNAL_ERROR)
    over an offset it cannot read, such as 1.5 or "bogus" (measured on 3.10.8).
    """
    checked = dict(arguments or {})
    for key, value in checked.items():
        if key != "x-stream-offset":
            raise NotSupportedError(f"consumer argument {key!r}", "hare knows x-stream-offset")
        if value in ("first", "last", "next") or isinstance(value, datetime):
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            continue
        if isinstance(value, str) and _INTERVAL.fullmatch(value):
            continue
        raise ConfigurationError(
            f"x-stream-offset must be 'first', 'last', 'next', an offset >= 0, a datetime or "
            f"an interval such as '1D', not {value!r}"
        )
    return checked


def validate_queue_name(name: str) -> str:
    """Return `name` if it can be a hare work queue, else raise `ConfigurationError`."""
    if not name or not name.strip():
        raise ConfigurationError("a queue name must not be empty")
    if name.startswith("amq."):
        raise ConfigurationError(f"queue name {name!r}: the 'amq.' prefix is reserved by AMQP")
    if len(name.encode()) > MAX_QUEUE_NAME_BYTES:
        raise ConfigurationError(
            f"queue name {name[:40]!r}... is longer than {MAX_QUEUE_NAME_BYTES} bytes"
        )
    return name


def work_queue(
    name: str, queue_type: QueueType, *, delivery_limit: int = 10, max_priority: int | None = None
) -> Queue:
    """The declaration of a work queue.

    A classic queue is declared exactly as Celery declares its queues (durable, no arguments),
    so hare and Celery processes can share it without PRECONDITION_FAILED. A quorum queue is
    replicated and carries a delivery limit as a guard against messages that kill their worker:
    the broker dead-letters the message into `<name>.dead` instead of delivering it again once
    it was delivered `delivery_limit` times. (RabbitMQ delivers a message `x-delivery-limit`
    + 1 times, measured on 3.10, hence the - 1; classic queues count in the worker, with the
    same meaning.)

    `max_priority` (classic only) adds `x-max-priority`, as Celery's `task_queue_max_priority`
    does, so that the broker orders the queue by the messages' priority.
    """
    validate_queue_name(name)
    if queue_type == "classic":
        if max_priority is not None:
            return Queue(name=name, arguments={"x-max-priority": max_priority})
        return Queue(name=name)
    return Queue(
        name=name,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit - 1,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": name + DEAD_SUFFIX,
        },
    )


def dead_letter_queue(name: str, queue_type: QueueType) -> Queue:
    """The declaration of the queue that holds `name`'s dead letters, of the work queue's type.

    A quorum work queue's dead letters go to a quorum queue, replicated like it: a classic one
    lives on one node, and a quorum queue dead-letters at most once, so whatever it dead-letters
    while that node is down is lost. `hare dlq` reads dead letters by taking them unsettled and
    handing them back, and a quorum queue counts each hand-back as a delivery, so the limit is
    explicit and out of reach: RabbitMQ 4.x otherwise drops a message after 20 of them, and its
    "unlimited" spelling, `x-delivery-limit: -1`, drops one at its first hand-back on 3.10
    (both measured). The type is explicit so that a vhost's default type cannot change it.
    """
    if queue_type == "classic":
        return Queue(name=name + DEAD_SUFFIX, arguments={"x-queue-type": "classic"})
    return Queue(
        name=name + DEAD_SUFFIX,
        arguments={"x-queue-type": "quorum", "x-delivery-limit": UNREACHABLE_DELIVERY_LIMIT},
    )
