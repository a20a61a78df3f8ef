"""One call of a task as a worker makes it: its context and the signals around it.

Signals go out in Celery's order, in the context that runs the task (the loop for async tasks,
the pool thread for sync ones, so thread-local set-up in `task_prerun` is seen by the task):
`task_prerun`, the function, then `task_success`, `task_retry` or `task_failure`, then the
task's `after_signal` (hare_compat's `after_return`), then `task_postrun`. A call stopped by
revoke(terminate=True) sends `task_revoked(terminated=True)` instead of `task_failure`. A sync
task past its hard time limit, an async task cancelled at it, and a task run in a process of
its own (`isolation="process"`) are finished from the loop instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from hare import signals
from hare.context import TaskContext, running
from hare.core.outcome import (
    Failed,
    Ignored,
    Outcome,
    Rejected,
    RetryRequested,
    Succeeded,
    format_traceback,
    outcome_of,
)
from hare.errors import TaskRevoked
from hare.worker.runner import raise_in_thread

if TYPE_CHECKING:
    from hare.task import Task

__all__ = ("ExceptionInfo", "Request", "TaskCall")

logger = logging.getLogger("hare.worker")


def _of_message(field: str) -> Any:
    """A read-only attribute that is the message's `field`."""
    return property(attrgetter(f"message.{field}"))


def _signatures(field: str) -> Any:
    """A read-only attribute: the signature dicts the message embeds as `field`, or None."""

    def get(request: Request) -> list[dict[str, Any]] | None:
        value = getattr(request.message.embed, field)
        return None if value is None else [dict(sig) for sig in value]

    return property(get)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(TaskContext):
    """A worker's context of one message, as `task_received`, `task_revoked` and `task_retry`
    receivers and errbacks that take the request get it: Celery's worker `Request` attributes,
    read from the message, on hare's `TaskContext` (`task` is the task's name here).

    As in Celery, `name` is the shadow name when the message has one (`type` is the task's
    name), `stamps` holds the values of the stamps `stamped_headers` names, `time_limits` is
    (hard, soft) and `callbacks`, `errbacks`, `chain` and `chord` are the signature dicts the
    message embeds (or None).
    """

    type = task = _of_message("task")
    task_id = _of_message("id")
    root_id = _of_message("root_id")
    parent_id = _of_message("parent_id")
    group = _of_message("group")
    group_index = _of_message("group_index")
    eta = _of_message("eta")
    expires = _of_message("expires")
    time_limits = _of_message("timelimit")
    reply_to = _of_message("reply_to")
    correlation_id = _of_message("correlation_id")
    replaced_task_nesting = _of_message("replaced_task_nesting")
    stamped_headers = _of_message("stamped_headers")
    stamps = _of_message("stamps")
    callbacks = _signatures("callbacks")
    errbacks = _signatures("errbacks")
    chain = _signatures("chain")

    @property
    def name(self) -> str:
        return self.message.shadow or self.message.task

    @property
    def task_name(self) -> str:
        return self.name

    @property
    def args(self) -> list[Any]:
        return list(self.message.args)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.message.kwargs)

    @property
    def argsrepr(self) -> str:
        return self.message.argsrepr or ""

    @property
    def kwargsrepr(self) -> str:
        return self.message.kwargsrepr or ""

    @property
    def chord(self) -> dict[str, Any] | None:
        chord = self.message.embed.chord
        return None if chord is None else dict(chord)

    @property
    def payload(self) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        """The message body as Celery's protocol v2 has it: args, kwargs and what follows."""
        follows = {"callbacks": self.callbacks, "errbacks": self.errbacks}
        return self.args, self.kwargs, {**follows, "chain": self.chain, "chord": self.chord}

    #: Celery's worker `Request` keeps the body as `_Request__payload`; code reaches for it.
    __payload = payload


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    """What Celery's `einfo` argument carries: the exception and its formatted traceback."""

    exception: BaseException
    traceback: str

    @property
    def type(self) -> type[BaseException]:
        return type(self.exception)

    def __str__(self) -> str:
        return self.traceback


class TaskCall:
    """Runs one call with its context and signals; `finish` settles the signals exactly once.

    `is_retry(outcome)` says whether the worker will run the task again (a `Retry`, or an
    exception the task's policy retries), which decides between `task_retry` and
    `task_failure`.
    """

    def __init__(
        self,
        task: Task[Any, Any],
        context: TaskContext,
        is_retry: Callable[[Outcome], bool],
    ) -> None:
        self.task = task
        self.context = context
        self._is_retry = is_retry
        self.finished = False
        self.sender = task.sender
        #: The signal named by a revoke with terminate=True, once one arrived.
        self.terminating: str | None = None
        self._task: asyncio.Task[Any] | None = None
        self._thread: int | None = None

    def terminate(self, signal: str) -> bool:
        """Stop the call with `TaskRevoked`; whether it could be reached."""
        if self.finished or self.terminating is not None:
            return False
        self.terminating = signal
        if self._task is not None:
            self._task.cancel()
            return True
        if self._thread is not None:
            raise_in_thread(self._thread, TaskRevoked)
            return True
        return False

    def wrap(self) -> Callable[..., Any]:
        """The function the runner calls in place of the task's own."""
        fn = self.task.fn
        if self.task.is_async:

            async def call_async(*args: Any, **kwargs: Any) -> Any:
                with running(self.context):
                    self._task = asyncio.current_task()
                    self.start()
                    try:
                        try:
                            value = await fn(*args, **kwargs)
                        except asyncio.CancelledError:
                            if self.terminating is None or self._task is None:
                                raise
                            self._task.uncancel()
                            raise TaskRevoked(f"terminated ({self.terminating})") from None
                    except Exception as exc:
                        await self.afinish(outcome_of(exc, format_traceback(exc)))
                        raise
                    await self.afinish(Succeeded(value))
                    return value

            return call_async

        def call_sync(*args: Any, **kwargs: Any) -> Any:
            with running(self.context):
                self._thread = threading.get_ident()
                self.start()
                try:
                    value = fn(*args, **kwargs)
                except Exception as exc:
                    self.finish(outcome_of(exc, format_traceback(exc)))
                    raise
                self.finish(Succeeded(value))
                return value

        return call_sync

    def start(self) -> None:
        if not signals.task_prerun.receivers:
            return  # the common case: skip building the arguments
        message = self.context.message
        signals.task_prerun.send(
            sender=self.sender,
            task_id=message.id,
            task=self.sender,
            args=list(message.args),
            kwargs=dict(message.kwargs),
        )

    def finish(self, outcome: Outcome) -> None:
        """Send the signals for how the call ended (once; later calls do nothing)."""
        if self.finished:
            return
        self.finished = True
        state, retval = self._signal(outcome)
        pending = self._after(state, retval)
        if inspect.isawaitable(pending):
            _discard(pending)
            logger.error(
                "task %s[%s]: its after_signal returned an awaitable outside the loop; not run",
                self.task.name,
                self.context.id,
            )
        self._postrun(state, retval)

    async def afinish(self, outcome: Outcome) -> None:
        """`finish` on the loop, for an async task: its `after_signal` may be awaited."""
        if self.finished:
            return
        self.finished = True
        state, retval = self._signal(outcome)
        pending = self._after(state, retval)
        if inspect.isawaitable(pending):
            try:
                await pending
            except Exception:
                logger.exception(
                    "task %s[%s]: after_signal failed", self.task.name, self.context.id
                )
        self._postrun(state, retval)

    def _signal(self, outcome: Outcome) -> tuple[str, Any]:
        """Send the signal of how the call ended; its state and the value or exception."""
        message = self.context.message
        sender = self.sender
        retval: Any = None
        if isinstance(outcome, Succeeded):
            state, retval = "SUCCESS", outcome.value
            signals.task_success.send(sender=sender, result=outcome.value)
        elif isinstance(outcome, Failed) and self.was_terminated(outcome):
            state, retval = "REVOKED", outcome.exception
            signals.task_revoked.send(
                sender=sender,
                request=self.context,
                terminated=True,
                signum=self.terminating,
                expired=False,
            )
        elif isinstance(outcome, Failed | RetryRequested) and self._is_retry(outcome):
            state = "RETRY"
            exc = outcome.exception
            retval = exc
            signals.task_retry.send(
                sender=sender,
                request=self.context,
                reason=exc,
                einfo=_einfo(exc, outcome.traceback),
            )
        elif isinstance(outcome, Failed | RetryRequested):
            state = "FAILURE"
            exc = outcome.exception
            retval = exc
            signals.task_failure.send(
                sender=sender,
                task_id=message.id,
                exception=exc,
                args=list(message.args),
                kwargs=dict(message.kwargs),
                traceback=outcome.traceback,
                einfo=_einfo(exc, outcome.traceback),
            )
        elif isinstance(outcome, Rejected):
            state = "REJECTED"
        else:
            assert isinstance(outcome, Ignored)
            state = "IGNORED"
        return state, retval

    def was_terminated(self, outcome: Outcome) -> bool:
        """Whether `outcome` is this call stopped by revoke(terminate=True)."""
        return (
            self.terminating is not None
            and isinstance(outcome, Failed)
            and isinstance(outcome.exception, TaskRevoked)
        )

    def _after(self, state: str, retval: Any) -> Any:
        hook = self.task.after_signal
        if hook is None:
            return None
        try:
            return hook(state, retval)
        except Exception:
            logger.exception("task %s[%s]: after_signal failed", self.task.name, self.context.id)
            return None

    def _postrun(self, state: str, retval: Any) -> None:
        if not signals.task_postrun.receivers:
            return  # the common case: skip building the arguments
        message = self.context.message
        signals.task_postrun.send(
            sender=self.sender,
            task_id=message.id,
            task=self.sender,
            args=list(message.args),
            kwargs=dict(message.kwargs),
            retval=retval,
            state=state,
        )


def _discard(pending: Any) -> None:
    close = getattr(pending, "close", None)
    if close is not None:
        close()


def _einfo(exc: BaseException | None, trace: str | None) -> ExceptionInfo | None:
    return None if exc is None else ExceptionInfo(exc, trace or "")
