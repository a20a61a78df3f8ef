"""A task message: one call of a task, as hare and Celery protocol v2 both understand it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ("Embed", "Message")


@dataclass(frozen=True, slots=True, kw_only=True)
class Embed:
    """The third element of a protocol v2 body: what runs after this task.

    Signatures stay as the JSON dicts Celery sends (`{"task", "args", "kwargs", "options",
    "subtask_type", "immutable"}`); `chain` lists the remaining steps last-first.
    """

    callbacks: tuple[Mapping[str, Any], ...] | None = None
    errbacks: tuple[Mapping[str, Any], ...] | None = None
    chain: tuple[Mapping[str, Any], ...] | None = None
    chord: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One call of a task.

    `eta` and `expires` are timezone-aware; a naive value from the wire is read as UTC.
    `headers` holds every header that is not a protocol v2 field (user headers such as
    tracing ids, and hare's own `hare-*` headers) and is published at the top level.
    """

    id: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    embed: Embed = field(default_factory=Embed)
    eta: datetime | None = None
    expires: datetime | None = None
    retries: int = 0
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    #: (hard, soft) time limits in seconds; hard first, as protocol v2 orders them.
    timelimit: tuple[float | None, float | None] = (None, None)
    shadow: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    origin: str | None = None
    ignore_result: bool | None = False
    reply_to: str | None = None
    correlation_id: str | None = None
    priority: int | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    #: The serializer's content type; JSON unless the sender chose otherwise.
    content_type: str = "application/json"

    @property
    def replaced_task_nesting(self) -> int:
        """How many `Task.replace` calls this message descends from (Celery's header; 0)."""
        value = self.headers.get("replaced_task_nesting")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def stamped_headers(self) -> list[str]:
        """The names of the message's stamps (Celery 5.3 stamping's header; none: `[]`)."""
        names = self.headers.get("stamped_headers")
        if not isinstance(names, list | tuple):
            return []
        return [name for name in names if isinstance(name, str)]

    @property
    def stamps(self) -> dict[str, Any]:
        """The value of each stamp `stamped_headers` names, as Celery's worker reads them."""
        values = self.headers.get("stamps")
        if not isinstance(values, Mapping):
            values = {}
        return {name: values.get(name) for name in self.stamped_headers}
