"""Periodic ticks as data: names, the messages of the tick queue, task ids per occurrence. Pure.

One circulating tick per schedule (research/delays.md §4.4): it waits in the schedule's slot
with a per-message expiration at its occurrence; when it expires the slot dead-letters it into
the app's tick queue. Periodic v2 (this module's `PREFIX`) makes both quorum queues, so they
survive the loss of a cluster node, and lets one process offer ticks: the tick queue is
`x-single-active-consumer`, every worker consumes it, and the one the broker delivers to is
the scheduler (`hare.periodic.election`). A quorum slot could not be shared by publishers:
quorum queues overshoot `x-max-length` under concurrent publishers (8 of 8 accepted, measured),
so v1's classic slot, which any pod could offer to, stayed on one node.

The tick queue carries four kinds of message (`TICK_KIND`): `tick` (an occurrence, from a
slot), `lease` (the placeholder of an `overlap=False` run, from a slot), `token` (leadership,
published by the workers) and `release` (an `overlap=False` run finished). A tick describes
itself (schedule, spec, task, queue, arguments, generation), so a scheduler can carry on a
schedule it does not define — a newer deploy's — instead of reverting it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hare.core.envelope import Envelope, Properties
from hare.core.headers import (
    TICK_APP,
    TICK_GENERATION,
    TICK_KIND,
    TICK_OCCURRENCE,
    TICK_POD,
    TICK_QUEUE,
    TICK_SCHEDULE,
    TICK_SERIAL,
    TICK_SPEC,
    TICK_SPEC_HASH,
    TICK_TASK,
)
from hare.core.topology import Queue
from hare.errors import MalformedMessage

__all__ = (
    "DELIVERY_LIMIT",
    "PREFIX",
    "V1_PREFIX",
    "Release",
    "Tick",
    "Token",
    "kind_of",
    "occurrence_task_id",
    "release_envelope",
    "release_from",
    "replaces",
    "slot_name",
    "slot_queue",
    "tick_envelope",
    "tick_from",
    "tick_queue",
    "tick_queue_name",
    "token_envelope",
    "token_from",
    "v1_slot_name",
    "v1_tick_queue_name",
)

#: Bump the version segment whenever a queue's arguments change: RabbitMQ refuses to redeclare
#: a queue with other arguments, so a changed design must be a new set of objects (v1: classic
#: slots, and a tick queue without single active consumer or delivery limit).
PREFIX = "hare.sched.v2"
V1_PREFIX = "hare.sched.v1"
#: `x-delivery-limit` of the tick queue and the slots. Explicit on every quorum queue: 4.x
#: defaults to 20, and a token or a tick comes back once each time a scheduler dies holding
#: it. Large and finite: `-1` means unlimited on 4.x but drops at the first return on 3.10.
DELIVERY_LIMIT = 1_000_000

T = TypeVar("T")

#: A namespace of our own for uuid5 task ids: the same schedule and occurrence give the same
#: id in every pod, so a duplicate run of one occurrence is recognisable.
_NAMESPACE = uuid.UUID("6f1c2f1e-9a55-5d2e-8c7a-4b8f4d3c2a10")


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """A schedule's pending occurrence, as it travels in the broker."""

    app: str
    schedule: str
    occurrence_ms: int
    spec: str
    spec_hash: str
    generation: int
    task: str
    queue: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: `lease`: a placeholder that keeps the slot full while an `overlap=False` run runs.
    kind: str = "tick"


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """A leadership token: the scheduler holds one unacked (`hare.periodic.election`)."""

    app: str
    #: The worker process that published it, and its serial number there.
    pod: str
    serial: int
    #: The publisher's deploy generation: a higher one asks the scheduler to step down.
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """An `overlap=False` run finished: the scheduler may replace its lease with a tick."""

    app: str
    schedule: str
    occurrence_ms: int


def slot_name(app: str, schedule: str) -> str:
    return f"{PREFIX}.{app}.{schedule}"


def tick_queue_name(app: str) -> str:
    return f"{PREFIX}.{app}.ticks"


def v1_slot_name(app: str, schedule: str) -> str:
    """A v1 slot (classic), deleted once no v1 worker runs (`hare.periodic.upgrade`)."""
    return f"{V1_PREFIX}.{app}.{schedule}"


def v1_tick_queue_name(app: str) -> str:
    return f"{V1_PREFIX}.{app}.ticks"


def slot_queue(app: str, schedule: str) -> Queue:
    """The schedule's slot: a replicated queue holding the pending tick.

    Only the scheduler offers to it, one offer at a time, after checking it is empty; the
    length limit is a backstop (a quorum queue takes one message past it, measured on 3.10.8
    and 4.0.5). Dead-lettering stays at-most-once: at-least-once would count the tick in
    transit against the limit, and a tick lost with a node mid-transfer is offered again by
    the next watchdog round.
    """
    return Queue(
        name=slot_name(app, schedule),
        arguments={
            "x-queue-type": "quorum",
            "x-max-length": 1,
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": tick_queue_name(app),
            "x-delivery-limit": DELIVERY_LIMIT,
        },
    )


def tick_queue(app: str) -> Queue:
    """Where expired ticks land: every worker consumes it, the broker delivers to one."""
    return Queue(
        name=tick_queue_name(app),
        arguments={
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-delivery-limit": DELIVERY_LIMIT,
        },
    )


def occurrence_task_id(app: str, schedule: str, occurrence_ms: int) -> str:
    """The task id of one occurrence: the same in every pod."""
    return str(uuid.uuid5(_NAMESPACE, f"{app}\x00{schedule}\x00{occurrence_ms}"))


def kind_of(properties: Properties) -> str:
    """`tick`, `lease`, `token` or `release` (a message without the header is a tick)."""
    kind = properties.headers.get(TICK_KIND, "tick")
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def tick_envelope(tick: Tick, *, now: float) -> Envelope:
    """The message that offers `tick` to its slot, expiring at its occurrence."""
    remaining = max(0, tick.occurrence_ms - round(now * 1000))
    headers = {
        TICK_KIND: tick.kind,
        TICK_APP: tick.app,
        TICK_SCHEDULE: tick.schedule,
        TICK_OCCURRENCE: tick.occurrence_ms,
        TICK_SPEC: tick.spec,
        TICK_SPEC_HASH: tick.spec_hash,
        TICK_GENERATION: tick.generation,
        TICK_TASK: tick.task,
        TICK_QUEUE: tick.queue,
    }
    body = json.dumps([list(tick.args), dict(tick.kwargs)]).encode()
    return Envelope(
        exchange="",
        routing_key=slot_name(tick.app, tick.schedule),
        body=body,
        properties=Properties(
            content_type="application/json", headers=headers, expiration=str(remaining)
        ),
    )


def tick_from(body: bytes, properties: Properties) -> Tick:
    """Read a tick back; `MalformedMessage` if it is not one."""
    headers = properties.headers

    def build() -> Tick:
        args, kwargs = json.loads(body)
        return Tick(
            app=_text(headers[TICK_APP]),
            schedule=_text(headers[TICK_SCHEDULE]),
            occurrence_ms=int(headers[TICK_OCCURRENCE]),
            spec=_text(headers[TICK_SPEC]),
            spec_hash=_text(headers[TICK_SPEC_HASH]),
            generation=int(headers[TICK_GENERATION]),
            task=_text(headers[TICK_TASK]),
            queue=_text(headers[TICK_QUEUE]),
            args=tuple(args),
            kwargs=dict(kwargs),
            kind=_text(headers.get(TICK_KIND, "tick")),
        )

    return _parsed("tick", build)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def token_envelope(token: Token) -> Envelope:
    """A token for the tick queue."""
    return _control("token", token, _TOKEN_FIELDS)


def token_from(properties: Properties) -> Token:
    """Read a token back; `MalformedMessage` if it is not one."""
    return _control_from("token", Token, properties, _TOKEN_FIELDS)


def release_envelope(release: Release) -> Envelope:
    """A release for the tick queue."""
    return _control("release", release, _RELEASE_FIELDS)


def release_from(properties: Properties) -> Release:
    """Read a release back; `MalformedMessage` if it is not one."""
    return _control_from("release", Release, properties, _RELEASE_FIELDS)


#: The header of each field of a control message, and how its value is read back.
_Fields = Mapping[str, tuple[str, Callable[[Any], Any]]]
_TOKEN_FIELDS: _Fields = {
    "app": (TICK_APP, _text),
    "pod": (TICK_POD, _text),
    "serial": (TICK_SERIAL, int),
    "generation": (TICK_GENERATION, int),
}
_RELEASE_FIELDS: _Fields = {
    "app": (TICK_APP, _text),
    "schedule": (TICK_SCHEDULE, _text),
    "occurrence_ms": (TICK_OCCURRENCE, int),
}


def _control(kind: str, item: Token | Release, fields: _Fields) -> Envelope:
    headers = {TICK_KIND: kind, **{key: getattr(item, name) for name, (key, _) in fields.items()}}
    return Envelope(
        exchange="",
        routing_key=tick_queue_name(item.app),
        body=b"",
        properties=Properties(headers=headers, delivery_mode=2),
    )


def _control_from(kind: str, cls: Callable[..., T], properties: Properties, fields: _Fields) -> T:
    headers = properties.headers
    return _parsed(
        kind, lambda: cls(**{name: read(headers[key]) for name, (key, read) in fields.items()})
    )


def _parsed(what: str, build: Callable[[], T]) -> T:
    try:
        return build()
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"not a hare {what}: {exc!r}", reason="bad-tick") from exc


def replaces(mine: Tick, pending: Tick) -> bool:
    """Whether a scheduler holding `mine` should replace the `pending` tick of the same schedule.

    A higher generation (a newer deploy) wins. At equal generations a different spec wins too
    (last writer wins): without generations the spec is that of the code that leads, and may
    flip back while a rolling deploy's old pods still take turns leading.
    """
    if mine.generation != pending.generation:
        return mine.generation > pending.generation
    return mine.spec_hash != pending.spec_hash
