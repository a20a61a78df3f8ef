"""Running a compat task in the calling process: `apply()`, `task_always_eager`, and the helpers
that differ between a worker and an eager call (`update_state`, the retry's arguments).

An eager call runs the task as a worker would (request with `is_eager=True`, hooks, signals,
a hare `TaskContext` so `current_task` answers) and returns an `EagerResult`. As in Celery, a
retry runs again at once (same id, `retries + 1`, the countdown is not waited), a failure
is raised when `throw` (default `task_eager_propagates`), and an eager result is not stored.
An async task is run with `asyncio.run` by `apply()`; inside a running loop, `await aapply()`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hare.context import TaskContext, current, running
from hare.core.message import Message
from hare.errors import NotSupportedError
from hare_compat._state import top_task
from hare_compat.app.configuration import conf_get
from hare_compat.app.request import PENDING_UPDATES, Context
from hare_compat.app.steps import adrive, drive
from hare_compat.app.trace import EagerOutcome, Tracer, is_async_task
from hare_compat.exceptions import Retry
from hare_compat.result import EagerResult

if TYPE_CHECKING:
    from hare_compat.app.task import Task

__all__ = ("EagerCall", "aupdate_state", "update_state")

logger = logging.getLogger("hare_compat.task")


def _maybe_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return list(value) if isinstance(value, list | tuple) else [value]


class EagerCall:
    """One `apply()`: the request it builds, run again while the task retries."""

    def __init__(
        self,
        task: Task,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        *,
        link: Any,
        link_error: Any,
        task_id: str | None,
        retries: int | None,
        throw: bool | None,
        logfile: str | None,
        loglevel: int | None,
        headers: Mapping[str, Any] | None,
        options: Mapping[str, Any],
    ) -> None:
        app = task._get_app()
        self.task = task
        self.args = args or ()
        self.kwargs = dict(kwargs or {})
        self.task_id = task_id or str(uuid.uuid4())
        self.retries = retries or 0
        self.throw = bool(conf_get(app, "task_eager_propagates", False) if throw is None else throw)
        parent = top_task()
        parent_request = parent[1] if parent is not None else None
        if parent_request is not None and parent_request.id is not None:
            self.parent_id: str | None = parent_request.id
            self.root_id = parent_request.root_id or self.task_id
        else:
            self.parent_id, self.root_id = None, self.task_id
        self.link, self.link_error = link, link_error
        self.logfile, self.loglevel = logfile, loglevel
        self.headers = dict(headers) if headers is not None else None
        self.options = options

    def _tracer(self) -> tuple[Tracer, TaskContext]:
        task, options = self.task, self.options
        delivery_info = {
            "is_eager": True,
            "exchange": options.get("exchange"),
            "routing_key": options.get("routing_key"),
            "priority": options.get("priority"),
        }
        limits = None
        if task.time_limit is not None or task.soft_time_limit is not None:
            limits = [task.time_limit, task.soft_time_limit]
        hostname = socket.gethostname()
        request = Context(
            id=self.task_id,
            task=task.name,
            parent_id=self.parent_id,
            root_id=self.root_id,
            retries=self.retries,
            is_eager=True,
            logfile=self.logfile,
            loglevel=self.loglevel or 0,
            hostname=hostname,
            callbacks=_maybe_list(self.link),
            errbacks=_maybe_list(self.link_error),
            headers=self.headers,
            timelimit=limits,
            ignore_result=options.get("ignore_result", task.ignore_result),
            delivery_info=delivery_info,
            args=self.args,
            kwargs=self.kwargs,
            called_directly=False,
        )
        context = TaskContext(
            message=Message(
                id=self.task_id,
                task=task.name or "",
                args=tuple(self.args),
                kwargs=dict(self.kwargs),
                retries=self.retries,
                root_id=self.root_id,
                parent_id=self.parent_id,
                headers=dict(self.headers or {}),
            ),
            hostname=hostname,
            delivery_info=delivery_info,
            is_eager=True,
        )
        tracer = Tracer(
            task,
            request,
            self.args,
            self.kwargs,
            eager=True,
            propagate=self.throw,
            is_async=is_async_task(task),
        )
        return tracer, context

    def run(self) -> EagerResult:
        while True:
            tracer, context = self._tracer()
            with running(context):
                if tracer.is_async:
                    outcome = _run_to_completion(self.task, adrive(tracer.steps()))
                else:
                    outcome = drive(tracer.steps())
            if not self._again(outcome):
                return self._result(outcome)

    async def arun(self) -> EagerResult:
        while True:
            tracer, context = self._tracer()
            with running(context):
                if tracer.is_async:
                    outcome = await adrive(tracer.steps())
                else:
                    outcome = drive(tracer.steps())
            if not self._again(outcome):
                return self._result(outcome)

    def _again(self, outcome: EagerOutcome) -> bool:
        """Whether the task asked to be retried (by `self.retry`): then run it again."""
        retry = outcome.retval
        if not isinstance(retry, Retry) or retry.retries is None:
            return False
        if retry.retry_args is not None:
            self.args = retry.retry_args
        if retry.retry_kwargs is not None:
            self.kwargs = retry.retry_kwargs
        self.retries += 1
        return True

    def _result(self, outcome: EagerOutcome) -> EagerResult:
        return EagerResult(
            self.task_id, outcome.retval, outcome.state, traceback=outcome.traceback,
            name=self.task.name,
        )  # fmt: skip


def _run_to_completion(task: Task, coro: Coroutine[Any, Any, EagerOutcome]) -> EagerOutcome:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise NotSupportedError(
        f"{task.name}.apply() (or delay() with task_always_eager) of an async task inside a "
        "running event loop",
        "it cannot block the loop it needs: use `await task.aapply(...)` / "
        "`await task.adelay(...)`, or run it on a worker",
    )


# -- update_state -----------------------------------------------------------------------------


def _target(task: Task, task_id: str | None, state: str | None) -> tuple[Any, str, Message | None]:
    """The hare results, the task id and (for rpc) the message of the call being updated."""
    if state is None:
        raise ValueError("update_state needs state=")
    request = task.request
    task_id = task_id or request.id
    if task_id is None:
        raise ValueError("update_state outside a running task needs task_id=")
    context = current()
    message = context.message if context is not None and context.message.id == task_id else None
    return task._get_app().hare.results, task_id, message


def update_state(
    task: Task,
    task_id: str | None,
    state: str | None,
    meta: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> None:
    if extra:
        raise NotSupportedError(f"update_state({', '.join(sorted(extra))}=)", "not supported")
    if task.request.is_eager and task_id is None:
        return  # eager results are not stored (task_store_eager_result is refused)
    results, task_id, message = _target(task, task_id, state)
    if results is None:
        return  # no result_backend: nothing is stored, as with Celery's disabled backend
    assert state is not None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        results.store_state(task_id, state, meta, request=message)
        return
    # On the event loop (an async task calling the sync API): store in the background, in
    # order; the task's wrapper waits for these stores before the task's result is recorded.
    previous = PENDING_UPDATES.get(task_id)

    async def store() -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await results.astore_state(task_id, state, meta, request=message)
        except Exception:
            logger.exception("update_state(%r) of task %s failed", state, task_id)

    job = loop.create_task(store())
    PENDING_UPDATES[task_id] = job
    job.add_done_callback(functools.partial(_forget, task_id))


def _forget(task_id: str, job: asyncio.Task[None]) -> None:
    if PENDING_UPDATES.get(task_id) is job:
        del PENDING_UPDATES[task_id]


async def aupdate_state(
    task: Task, task_id: str | None, state: str | None, meta: Mapping[str, Any] | None
) -> None:
    if task.request.is_eager and task_id is None:
        return
    results, task_id, message = _target(task, task_id, state)
    if results is None:
        return
    assert state is not None
    job = PENDING_UPDATES.get(task_id)
    if job is not None:
        await asyncio.gather(job, return_exceptions=True)
    await results.astore_state(task_id, state, meta, request=message)
