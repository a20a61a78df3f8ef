"""`Task.request`: Celery's `Context`, built from the message hare's worker is running.

The stack of running requests (Celery's thread-local one, a `ContextVar` here) is in
`hare_compat._state`, beside `current_task`, which reads it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hare.context import TaskContext

__all__ = ("PENDING_UPDATES", "Context", "from_hare")

#: Headers hare uses for itself; they are not the user's `request.headers`.
_HARE_HEADER_PREFIX = "hare-"


class Context:
    """Task request variables (`Task.request`), with Celery's names and defaults."""

    _children: list[Any] | None = None
    _protected = 0
    args: Any = None
    callbacks: Any = None
    called_directly = True
    chain: Any = None
    chord: Any = None
    correlation_id: str | None = None
    delivery_info: Any = None
    errbacks: Any = None
    eta: str | None = None
    expires: str | None = None
    group: str | None = None
    group_index: int | None = None
    headers: dict[str, Any] | None = None
    hostname: str | None = None
    id: str | None = None
    ignore_result = False
    is_eager = False
    kwargs: Any = None
    logfile: str | None = None
    loglevel: int | None = None
    origin: str | None = None
    parent_id: str | None = None
    properties: dict[str, Any] | None = None
    retries = 0
    reply_to: str | None = None
    replaced_task_nesting = 0
    root_id: str | None = None
    shadow: str | None = None
    taskset: str | None = None
    timelimit: Any = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    utc: bool | None = None
    stamped_headers: Any = None
    stamps: Any = None
    #: `retry(max_retries=)` of this call, for the autoretry wrapper (Celery keeps it on the
    #: task instance, which concurrent async calls share).
    _override_max_retries: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.update(*args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.update(*args, **kwargs)
        if "timelimit" in self.__dict__:
            limit = self.__dict__["timelimit"]
            if isinstance(limit, list | tuple) and len(limit) >= 2:
                self.time_limit, self.soft_time_limit = limit[0], limit[1]
            else:
                self.time_limit = self.soft_time_limit = None

    def clear(self) -> None:
        self.__dict__.clear()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __repr__(self) -> str:
        return f"<Context: {vars(self)!r}>"

    @property
    def children(self) -> list[Any]:
        if self._children is None:
            self._children = []
        return self._children

    def as_execution_options(self) -> dict[str, Any]:
        """The options that send this request again (Celery's, for `signature_from_request`)."""
        hard, soft = self.timelimit or (None, None)
        return {
            "task_id": self.id,
            "root_id": self.root_id,
            "parent_id": self.parent_id,
            "group_id": self.group,
            "group_index": self.group_index,
            "shadow": self.shadow,
            "chord": self.chord,
            "chain": self.chain,
            "link": self.callbacks,
            "link_error": self.errbacks,
            "expires": self.expires,
            "soft_time_limit": soft,
            "time_limit": hard,
            "headers": dict(self.headers or {}),
            "retries": self.retries,
            "reply_to": self.reply_to,
            "replaced_task_nesting": self.replaced_task_nesting,
            "origin": self.origin,
        }


def _listed(value: tuple[Mapping[str, Any], ...] | None) -> list[dict[str, Any]] | None:
    return None if value is None else [dict(one) for one in value]


def from_hare(context: TaskContext) -> Context:
    """The request of the message `context` runs, as Celery's worker builds it.

    `eta` and `expires` are ISO-8601 strings and `args` a list, as Celery's worker has them;
    `stamped_headers` is None and `stamps` empty for a message no one stamped.
    """
    message = context.message
    hard, soft = message.timelimit
    headers = {
        key: value
        for key, value in message.headers.items()
        if not key.startswith(_HARE_HEADER_PREFIX)
    }
    embed = message.embed
    return Context(
        id=message.id,
        task=message.task,
        args=list(message.args),
        kwargs=dict(message.kwargs),
        root_id=message.root_id,
        parent_id=message.parent_id,
        group=message.group,
        group_index=message.group_index,
        retries=message.retries,
        eta=message.eta.isoformat() if message.eta is not None else None,
        expires=message.expires.isoformat() if message.expires is not None else None,
        timelimit=[hard, soft],
        shadow=message.shadow,
        argsrepr=message.argsrepr,
        kwargsrepr=message.kwargsrepr,
        origin=message.origin,
        ignore_result=bool(message.ignore_result),
        reply_to=message.reply_to,
        correlation_id=message.correlation_id,
        hostname=context.hostname,
        delivery_info=dict(context.delivery_info),
        is_eager=context.is_eager,
        called_directly=False,
        callbacks=_listed(embed.callbacks),
        errbacks=_listed(embed.errbacks),
        chain=_listed(embed.chain),
        chord=dict(embed.chord) if embed.chord is not None else None,
        headers=headers or None,
        replaced_task_nesting=message.replaced_task_nesting,
        stamped_headers=message.stamped_headers or None,
        stamps=message.stamps,
        properties=dict(context.properties)
        or {
            "correlation_id": message.correlation_id,
            "reply_to": message.reply_to,
            "priority": message.priority,
            "content_type": message.content_type,
        },
        utc=True,
    )


#: Background stores of `update_state` called on an event loop, by task id: the task's
#: wrapper awaits them before the task's own result is recorded (see app.eager).
PENDING_UPDATES: dict[str, asyncio.Task[None]] = {}
