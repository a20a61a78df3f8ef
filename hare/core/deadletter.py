"""Dead letters: a message that cannot or must not run, kept with the reason why.

The worker dead-letters by publishing a copy to `<queue>.dead` (waiting for the confirm) and
only then acking the original, so a dead letter is never lost between the two. The copy keeps
the body and properties as they arrived and adds `hare-dead-*` headers. This works on classic
and quorum queues alike, unlike broker-side dead-lettering.

Writing (`dead_letter_envelope`) and reading back (`read_row`, `read_detail`, and the
messages that replay them) are both here. Pure: no I/O; `hare.dlq` browses the queues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from hare.core import protocol
from hare.core.envelope import Delivery, Envelope, Properties
from hare.core.headers import (
    DEAD_AT,
    DEAD_ATTEMPTS,
    DEAD_DETAIL,
    DEAD_EXCEPTION,
    DEAD_PREFIX,
    DEAD_QUEUE,
    DEAD_REASON,
    DEAD_TRACEBACK,
    DEATH_HEADERS,
    ETA_HEADER,
    REPLAYS_HEADER,
)
from hare.core.message import Message
from hare.core.topology import DEAD_SUFFIX
from hare.errors import ConfigurationError, MessageError

__all__ = (
    "DeadLetter",
    "DeadLetterDetail",
    "DeadLetterRow",
    "Selector",
    "dead_at",
    "dead_letter_envelope",
    "dead_queue_name",
    "read_detail",
    "read_row",
    "replay_headers",
    "replay_message",
    "strip_death_headers",
    "work_queue_name",
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
            DEAD_REASON: dead.reason,
            DEAD_DETAIL: _clip(dead.detail, _MAX_DETAIL),
            DEAD_EXCEPTION: dead.exception_type,
            DEAD_TRACEBACK: _clip(dead.traceback, _MAX_TRACEBACK),
            DEAD_QUEUE: delivery.queue,
            DEAD_ATTEMPTS: dead.attempts,
            DEAD_AT: int(now * 1000),
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


# -- reading dead letters back --------------------------------------------------------------

#: How many times a message was replayed from its dead letters.
#: Bookkeeping a replayed message must not carry: hare's dead-letter headers, RabbitMQ's death
#: headers (see `hare.core.deadletter.DEATH_HEADERS`) and a quorum queue's delivery count.
_DROPPED = DEATH_HEADERS | {"x-delivery-count"}


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterRow:
    """One dead letter, summarised from its headers."""

    position: int  # 1-based, in the dead-letter queue as the browse found it
    queue: str  # the work queue it came from and goes back to
    task: str | None
    id: str  # the task id; else the correlation id; else "#<position>"
    correlation_id: str | None
    reason: str
    detail: str
    exception: str | None
    attempts: int | None
    dead_at: datetime | None
    replays: int

    def is_named(self, name: str) -> bool:
        """Whether `name` is this dead letter's id, correlation id or `#<position>`."""
        return name in (self.id, self.correlation_id, f"#{self.position}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterDetail:
    """One dead letter in full: the call it carries and its properties, headers included."""

    row: DeadLetterRow
    args: tuple[Any, ...] | None
    kwargs: Mapping[str, Any] | None
    decode_error: str | None  # why args and kwargs are None
    properties: Properties
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Which dead letters a replay takes: every one, some ids, or one task's."""

    every: bool = False
    ids: frozenset[str] = frozenset()
    task: str | None = None

    def __post_init__(self) -> None:
        if sum((self.every, bool(self.ids), self.task is not None)) != 1:
            raise ConfigurationError("select exactly one of: all, ids, task")

    def matches(self, row: DeadLetterRow) -> bool:
        if self.task is not None:
            return row.task == self.task
        return self.every or any(row.is_named(name) for name in self.ids)


def dead_queue_name(queue: str) -> str:
    """`emails` or `emails.dead` -> `emails.dead`."""
    return queue if queue.endswith(DEAD_SUFFIX) else queue + DEAD_SUFFIX


def work_queue_name(queue: str) -> str:
    """`emails` or `emails.dead` -> `emails`."""
    return queue.removesuffix(DEAD_SUFFIX)


def read_row(position: int, delivery: Delivery, accept: frozenset[str]) -> DeadLetterRow:
    properties = delivery.properties
    headers = properties.headers
    task, task_id = _text(headers.get("task")), _text(headers.get("id"))
    if task is None:  # protocol v1 keeps task and id in the body
        try:
            message = protocol.decode(delivery.body, properties, accept=accept)
            task, task_id = message.task, message.id
        except MessageError:
            pass
    return DeadLetterRow(
        position=position,
        queue=_text(headers.get(DEAD_QUEUE))
        or _text(headers.get("x-first-death-queue"))
        or work_queue_name(delivery.queue),
        task=task,
        id=task_id or properties.correlation_id or f"#{position}",
        correlation_id=properties.correlation_id,
        reason=_text(headers.get(DEAD_REASON))
        or _text(headers.get("x-first-death-reason"))
        or "unknown",
        detail=_text(headers.get(DEAD_DETAIL)) or "",
        exception=_text(headers.get(DEAD_EXCEPTION)),
        attempts=_int(headers.get(DEAD_ATTEMPTS)),
        dead_at=dead_at(headers),
        replays=_int(headers.get(REPLAYS_HEADER)) or 0,
    )


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dead_at(headers: Mapping[str, Any]) -> datetime | None:
    millis = _int(headers.get(DEAD_AT))
    if millis is not None:
        return datetime.fromtimestamp(millis / 1000, UTC)
    # Dead-lettered by the broker (a quorum queue's delivery limit): the time of the first
    # death, the last entry of x-death (RabbitMQ puts the most recent first).
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[-1], Mapping):
        when = deaths[-1].get("time")
        if isinstance(when, datetime):
            return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return None


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers without dead-letter bookkeeping, with the replay counter one up."""
    kept = {k: v for k, v in headers.items() if k not in _DROPPED and not k.startswith(DEAD_PREFIX)}
    kept[REPLAYS_HEADER] = (_int(headers.get(REPLAYS_HEADER)) or 0) + 1
    return kept


def replay_message(
    delivery: Delivery, accept: frozenset[str], countdown: float | None, now: float
) -> Message | None:
    """The task message to replay, or `None` when the body cannot be decoded (sent raw)."""
    try:
        message = protocol.decode(delivery.body, delivery.properties, accept=accept)
    except MessageError:
        return None
    headers = replay_headers(message.headers)
    headers.pop(ETA_HEADER, None)  # a stale due time; the publisher sets a new one with eta
    eta = None if countdown is None else datetime.fromtimestamp(now + countdown, UTC)
    return replace(message, retries=0, eta=eta, headers=headers)


def read_detail(row: DeadLetterRow, delivery: Delivery, accept: frozenset[str]) -> DeadLetterDetail:
    """The dead letter in full, its body decoded when it can be."""
    args = kwargs = error = None
    try:
        message = protocol.decode(delivery.body, delivery.properties, accept=accept)
        args, kwargs = message.args, message.kwargs
    except MessageError as exc:
        error = f"{exc.reason}: {exc}"
    return DeadLetterDetail(
        row=row,
        args=args,
        kwargs=kwargs,
        decode_error=error,
        properties=delivery.properties,
        body=delivery.body,
    )
