"""A stand-in for hare_compat's `Celery` app (helper D1's) with just what Task needs.

Used by the compat task tests until they can run on the real `Celery` class: `.conf`,
`.hare`, `.tasks`, `.task()`, `.send_task()`, `.asend_task()`, `.AsyncResult()`,
`.control`, `.finalize()`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from hare import Hare
from hare_compat.app.factory import task_from_function
from hare_compat.app.task import Task as CompatTask
from hare_compat.result import AsyncResult

#: The `send_task` options hare's own send_task takes (the rest are Celery's own).
_HARE_OPTIONS = {
    "queue",
    "task_id",
    "headers",
    "expires",
    "priority",
    "ignore_result",
    "shadow",
    "countdown",
    "eta",
    "time_limit",
    "soft_time_limit",
    "link",
    "link_error",
}


class FakeControl:
    def __init__(self) -> None:
        self.revoked: list[tuple[str, dict[str, Any]]] = []

    def revoke(self, task_id: str, **options: Any) -> None:
        self.revoked.append((task_id, options))


class FakeApp:
    Task = CompatTask

    def __init__(self, hare: Hare, **conf: Any) -> None:
        self.hare = hare
        self.main = "tests"
        self.conf: dict[str, Any] = {
            "task_always_eager": False,
            "task_eager_propagates": False,
            "task_serializer": "json",
            "task_ignore_result": False,
            **conf,
        }
        self.tasks: dict[str, CompatTask] = {}
        self.control = FakeControl()
        self.sent: list[tuple[str, Any, Any, dict[str, Any]]] = []

    @overload
    def task(self, fn: Callable[..., Any], /) -> CompatTask: ...

    @overload
    def task(self, /, **options: Any) -> Callable[[Callable[..., Any]], CompatTask]: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, **options: Any
    ) -> CompatTask | Callable[[Callable[..., Any]], CompatTask]:
        if fn is not None:
            return task_from_function(self, fn, **options)

        def decorate(fn: Callable[..., Any]) -> CompatTask:
            return task_from_function(self, fn, **options)

        return decorate

    def finalize(self) -> None:
        for task in self.tasks.values():
            task.bind_hare(self.hare)

    def _options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k in _HARE_OPTIONS and v is not None}

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        self.sent.append((name, args, kwargs, dict(options)))
        sent = self.hare.send_task(name, args, kwargs, **self._options(options))
        return AsyncResult(sent.id, app=self, task_name=name)

    async def asend_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        self.sent.append((name, args, kwargs, dict(options)))
        sent = await self.hare.asend_task(name, args, kwargs, **self._options(options))
        return AsyncResult(sent.id, app=self, task_name=name)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        return AsyncResult(task_id, app=self, **kwargs)
