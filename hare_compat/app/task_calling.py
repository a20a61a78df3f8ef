"""Calling a task, Celery's calling API: send it (`delay`, `apply_async`), run it here
(`apply`), send it again (`retry`), and their async forms (hare's additions).

A mixin of `hare_compat.app.task.Task`, kept apart because it is one concept; the rules
(Celery's options, argument checks, `retry`'s) are in `hare_compat.app.calling`, the eager
run in `hare_compat.app.eager`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from hare_compat.app import calling, eager
from hare_compat.app.configuration import conf_get

if TYPE_CHECKING:
    from hare_compat.app.task import Task
    from hare_compat.exceptions import Retry
    from hare_compat.result import AsyncResult as _AsyncResult
    from hare_compat.result import EagerResult

__all__ = ("TaskCalling",)


class TaskCalling:
    """`delay`, `apply_async`, `apply`, `retry` (and `adelay`, `aapply_async`, `aapply`)."""

    if TYPE_CHECKING:
        name: str | None

        @classmethod
        def _get_app(cls) -> Any: ...

    # -- sending ----------------------------------------------------------------------------

    def delay(self, *args: Any, **kwargs: Any) -> _AsyncResult:
        """Send the task to a worker: `apply_async(args, kwargs)`."""
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> _AsyncResult:
        """`delay` for async code (hare's addition)."""
        return await self.aapply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> _AsyncResult:
        """Send the task (or run it here with `task_always_eager`); Celery's options."""
        args, kwargs, options, app, eagerly = self._prepare_call(
            args, kwargs, producer, shadow, options
        )
        if eagerly:
            return self.apply(
                args, kwargs, task_id=task_id or str(uuid.uuid4()), link=link,
                link_error=link_error, **options,
            )  # fmt: skip
        result: _AsyncResult = app.send_task(
            self.name, args, kwargs, task_id=task_id, link=link, link_error=link_error,
            task_type=self, **options,
        )  # fmt: skip
        return result

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> _AsyncResult:
        """`apply_async` for async code (hare's addition)."""
        args, kwargs, options, app, eagerly = self._prepare_call(
            args, kwargs, producer, shadow, options
        )
        if eagerly:
            return await self.aapply(
                args, kwargs, task_id=task_id or str(uuid.uuid4()), link=link,
                link_error=link_error, **options,
            )  # fmt: skip
        result: _AsyncResult = await app.asend_task(
            self.name, args, kwargs, task_id=task_id, link=link, link_error=link_error,
            task_type=self, **options,
        )  # fmt: skip
        return result

    def _prepare_call(
        self,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        producer: Any,
        shadow: str | None,
        options: dict[str, Any],
    ) -> tuple[Sequence[Any] | None, Mapping[str, Any] | None, dict[str, Any], Any, bool]:
        """What `apply_async` sends or runs: the arguments, the options (the task's defaults
        and the call's), the app, and whether it runs here (`task_always_eager`)."""
        task = cast("Task", self)
        options = calling.send_options(task, args, kwargs, producer, shadow, options)
        args, kwargs = calling.dump_models(task, args, kwargs, options)
        app = self._get_app()
        eagerly = bool(conf_get(app, "task_always_eager", False))
        if eagerly:
            args, kwargs = calling.eager_arguments(task, args, kwargs)
        return args, kwargs, options, app, eagerly

    def shadow_name(self, args: Any, kwargs: Any, options: Any) -> str | None:
        """Override to name the task differently in worker logs and monitoring."""
        return None

    # -- eager ------------------------------------------------------------------------------

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        link: Any = None,
        link_error: Any = None,
        task_id: str | None = None,
        retries: int | None = None,
        throw: bool | None = None,
        logfile: str | None = None,
        loglevel: int | None = None,
        headers: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult:
        """Run the task here, blocking, as a worker would; an `EagerResult`.

        `throw` (default `task_eager_propagates`) re-raises the task's exception. An async
        task is run to completion with `asyncio.run`; inside a running loop use `aapply`.
        """
        call = eager.EagerCall(
            cast("Task", self), args, kwargs, link=link, link_error=link_error, task_id=task_id,
            retries=retries, throw=throw, logfile=logfile, loglevel=loglevel, headers=headers,
            options=options,
        )  # fmt: skip
        return call.run()

    async def aapply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        link: Any = None,
        link_error: Any = None,
        task_id: str | None = None,
        retries: int | None = None,
        throw: bool | None = None,
        logfile: str | None = None,
        loglevel: int | None = None,
        headers: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult:
        """`apply` for async code: an async task runs on the running loop."""
        call = eager.EagerCall(
            cast("Task", self), args, kwargs, link=link, link_error=link_error, task_id=task_id,
            retries=retries, throw=throw, logfile=logfile, loglevel=loglevel, headers=headers,
            options=options,
        )  # fmt: skip
        return await call.arun()

    # -- retrying ---------------------------------------------------------------------------

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Retry the task: raise `Retry` (the worker sends it again), Celery 5.7's semantics.

        Past `max_retries` (the task's, or this call's) `exc` is re-raised, else
        `MaxRetriesExceededError`. Called directly (not by a worker or `apply`), the current
        exception (or `exc`) is re-raised.
        """
        task = cast("Task", self)
        return calling.retry(task, args, kwargs, exc, throw, eta, countdown, max_retries, options)
