"""A delivery on a handler queue, addressed to that queue's handler, its payload checked.

An emitted event carries the task name `hare.event` (`EVENT_TASK`) and the same id in every
handler queue it reaches. At admission the worker gives each handler's copy its handler's task
name and an id of its own, derived from the event's id and the queue (stable: a redelivered
copy gets the same one), so the handlers' runs, retries, `inspect` lines and revocations stay
apart; the event's id stays the `root_id`. A delivery on a handler queue runs that queue's
handler when it is an event (`hare.event`) or names that handler: a retry (sent back through
the delay ladder with the handler's name) or a replayed dead letter maps the same way; any
other task sent there runs as itself.

Pure: no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from hare.core.deadletter import DeadLetter
from hare.core.message import Message
from hare.events.errors import InvalidPayload
from hare.events.handlers import Events
from hare.events.names import EVENT_TASK
from hare.events.payload import load

__all__ = ("INVALID_PAYLOAD", "address", "handler_copy_id")

#: The dead-letter reason of an event whose payload its handler's annotation refuses.
INVALID_PAYLOAD = "invalid-payload"

_IDS = uuid.UUID("5f1b2e86-7d0c-4c53-9a4e-3c1f0e8b7a21")


def handler_copy_id(event_id: str, queue: str) -> str:
    """The id of the copy of event `event_id` that handler queue `queue` runs."""
    return str(uuid.uuid5(_IDS, f"{event_id}\x00{queue}"))


def address(events: Events, queue: str, message: Message) -> Message | DeadLetter:
    """`message` as a call of `queue`'s handler (unchanged when `queue` has none), or the dead
    letter of a payload that handler cannot take (reason `invalid-payload`, never retried)."""
    handler = events.handler_for(queue)
    if handler is None or message.task not in (EVENT_TASK, handler.task.name):
        return message  # not an event: a task sent to this queue by name runs as itself
    if message.task == EVENT_TASK:
        message = replace(
            message,
            id=handler_copy_id(message.id, queue),
            correlation_id=handler_copy_id(message.id, queue),
            root_id=message.root_id or message.id,
        )
    # No priority: a handler queue has no band, so a retry must come back to the queue itself.
    message = replace(message, task=handler.task.name, priority=None)
    if len(message.args) != 1 or message.kwargs:
        detail = (
            f"an event carries one payload argument; this message has {len(message.args)} "
            f"argument(s) and keyword(s) {sorted(message.kwargs)}"
        )
        return DeadLetter(reason=INVALID_PAYLOAD, detail=detail)
    try:
        load(handler.annotation, message.args[0])
    except InvalidPayload as exc:
        detail = f"handler {handler.task.name} takes {_named(handler.annotation)}: {exc}"
        return DeadLetter(reason=INVALID_PAYLOAD, detail=detail)
    return message


def _named(annotation: object) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)
