"""Periodic ticks as data: names, the tick message, task ids per occurrence. Pure.

One circulating tick per schedule (research/delays.md §4.4): it waits in the schedule's slot,
a classic queue with `x-max-length=1` and `x-overflow=reject-publish`, so the broker refuses a
second one and any number of pods may offer ticks without talking to each other. The tick's
per-message expiration is its occurrence; when it expires the slot dead-letters it into the
app's tick queue, where any worker takes it, offers the next tick, and publishes the task.

A tick describes itself (schedule, spec, task, queue, arguments, generation), so a pod can
carry on a schedule it does not define — a newer deploy's — instead of reverting it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hare.core.envelope import Envelope, Properties
from hare.core.headers import (
    TICK_APP,
    TICK_GENERATION,
    TICK_KIND,
    TICK_OCCURRENCE,
    TICK_QUEUE,
    TICK_SCHEDULE,
    TICK_SPEC,
    TICK_SPEC_HASH,
    TICK_TASK,
)
from hare.core.topology import Queue
from hare.errors import MalformedMessage

__all__ = (
    "PREFIX",
    "Tick",
    "occurrence_task_id",
    "replaces",
    "slot_name",
    "slot_queue",
    "tick_envelope",
    "tick_from",
    "tick_queue",
    "tick_queue_name",
)

PREFIX = "hare.sched.v1"

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


def slot_name(app: str, schedule: str) -> str:
    return f"{PREFIX}.{app}.{schedule}"


def tick_queue_name(app: str) -> str:
    return f"{PREFIX}.{app}.ticks"


def slot_queue(app: str, schedule: str) -> Queue:
    """The schedule's slot: at most one ready message, and the broker refuses a second.

    Classic, and declared so explicitly: a quorum queue overshoots `x-max-length` under
    concurrent publishers (8 of 8 accepted, measured), and a vhost's default queue type may be
    quorum.
    """
    return Queue(
        name=slot_name(app, schedule),
        arguments={
            "x-queue-type": "classic",
            "x-max-length": 1,
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": tick_queue_name(app),
        },
    )


def tick_queue(app: str) -> Queue:
    """Where expired ticks land, consumed by every worker of the app."""
    return Queue(name=tick_queue_name(app), arguments={"x-queue-type": "quorum"})


def occurrence_task_id(app: str, schedule: str, occurrence_ms: int) -> str:
    """The task id of one occurrence: the same in every pod."""
    return str(uuid.uuid5(_NAMESPACE, f"{app}\x00{schedule}\x00{occurrence_ms}"))


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
    try:
        args, kwargs = json.loads(body)
        tick = Tick(
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
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"not a hare tick: {exc!r}", reason="bad-tick") from exc
    return tick


def replaces(mine: Tick, pending: Tick) -> bool:
    """Whether a pod holding `mine` should replace the `pending` tick of the same schedule.

    A higher generation (a newer deploy) wins. At equal generations a different spec wins too
    (last writer wins): without generations a rolling deploy may flip the spec until the old
    pods are gone, which the watchdog then settles.
    """
    if mine.generation != pending.generation:
        return mine.generation > pending.generation
    return mine.spec_hash != pending.spec_hash


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value
