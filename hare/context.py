"""The running task's context: which message it came from, readable from inside the task.

The worker sets it around each call, on the loop for async tasks and in the pool thread for
sync ones (the context is copied into the thread), so `current()` answers in either. Eager
calls (`Task.apply`, hare_compat's `task_always_eager`) set one with `is_eager=True`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from hare.core.message import Message

__all__ = ("TaskContext", "current", "running")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskContext:
    """One run of a task: its message and where it was delivered."""

    message: Message
    #: The queue the message was consumed from (`None` for an eager call).
    queue: str | None = None
    #: The worker's node name, `gen<pid>@<host>`.
    hostname: str | None = None
    #: Celery's `request.delivery_info`: exchange, routing_key, priority, redelivered.
    delivery_info: Mapping[str, Any] = field(default_factory=dict)
    #: The message's AMQP properties as it arrived (Celery's `request.properties`:
    #: content_type, priority, app_id, ...), those set only, headers apart.
    properties: Mapping[str, Any] = field(default_factory=dict)
    is_eager: bool = False

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def retries(self) -> int:
        return self.message.retries


_current: ContextVar[TaskContext | None] = ContextVar("hare_task_context", default=None)


def current() -> TaskContext | None:
    """The context of the task running in this thread or coroutine; `None` outside tasks."""
    return _current.get()


class running:  # lower-case: used like a function, `with running(context):`
    """Make `context` current for the duration of the block.

    A class rather than a `@contextmanager` generator: it is entered once per task run, and
    this costs a third as much."""

    __slots__ = ("_context", "_token")

    def __init__(self, context: TaskContext) -> None:
        self._context = context

    def __enter__(self) -> TaskContext:
        self._token = _current.set(self._context)
        return self._context

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)
