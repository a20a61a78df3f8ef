"""The message an emitted event is: an ordinary Celery protocol v2 task message.

Task name `hare.event`, one positional argument (the payload, as JSON-ready data), the event's
name in the `hare-event` header, no result (`ignore_result`), no reply queue and no priority
(a handler queue has no priority band: a retry sent to `<queue>.high` would wait forever). Pure: the
time, the id and the calling task come in the builder's `Env`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hare.core import calls
from hare.core.calls import Env
from hare.core.headers import EVENT_HEADER
from hare.core.message import Message
from hare.events.names import EVENT_TASK, validate_event_name
from hare.events.payload import dump

__all__ = ("event_message", "event_name")


def event_message(event: str, payload: Any, env: Env) -> Message:
    """The message that carries `payload` as event `event` (`InvalidEventName` first)."""
    validate_event_name(event)
    options = {"ignore_result": True, "headers": {EVENT_HEADER: event}}
    _, message = calls.build_message(
        EVENT_TASK, [dump(payload)], {}, options, replace(env, reply_to=None, default_priority=None)
    )
    return message


def event_name(message: Message) -> str | None:
    """The event a message carries, if it is one."""
    name = message.headers.get(EVENT_HEADER)
    return name if isinstance(name, str) else None
