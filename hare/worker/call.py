"""One call of a task as a worker makes it: its context and the signals around it.

Signals go out in Celery's order, in the context that runs the task (the loop for async tasks,
the pool thread for sync ones, so thread-local set-up in `task_prerun` is seen by the task):
`task_prerun`, the middleware's `before_run`, the function, then `task_success`, `task_retry`
(and `on_retry`) or `task_failure`, then the task's `after_signal` (hare_compat's
`after_return`), the middleware's `after_run`, then `task_postrun` (`hare.middleware`). A call
stopped by revoke(terminate=True) sends `task_revoked(terminated=True)` instead of
`task_failure`. A sync task past its hard time limit and an async task cancelled at it are
finished from the loop instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hare import signals
from hare.context import running
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
from hare.core.retry import Ack, DeadLetterAs, Uniform, decide
from hare.errors import TaskRevoked
from hare.worker.einfo import ExceptionInfo
from hare.worker.request import Request
from hare.worker.runner import raise_in_thread
from hare.worker.verdict import Verdict

if TYPE_CHECKING:
    from hare.task import Task

__all__ = ("TaskCall",)

logger = logging.getLogger("hare.worker")


class TaskCall:
    """Runs one call with its context and signals, and judges how it ended, once.

    The wrapped function (`wrap`) returns the call's `Verdict` instead of the task's value:
    how the task ended, and what becomes of its delivery by the task's retry policy (`rng`
    draws the retry's jitter), which also decides between `task_retry` and `task_failure`.
    A call that could not end itself is judged on the loop (`ended`).
    """

    def __init__(self, task: Task[Any, Any], context: Request, rng: Uniform) -> None:
        self.task = task
        self.context = context
        self._rng = rng
        self.finished = False
        self.sender = task.sender
        self._middleware = task.app.middleware
        #: The signal named by a revoke with terminate=True, once one arrived.
        self.terminating: str | None = None
        self._task: asyncio.Task[Any] | None = None
        self._thread_id: int | None = None
        #: Stops the call where it runs elsewhere (a prefork child), given the signal's name.
        self.stop_remote: Callable[[str], None] | None = None

    def terminate(self, signal: str) -> bool:
        """Stop the call with `TaskRevoked`; whether it could be reached."""
        if self.finished or self.terminating is not None:
            return False
        self.terminating = signal
        if self.stop_remote is not None:
            self.stop_remote(signal)
            return True
        if self._task is not None:
            self._task.cancel()
            return True
        if self._thread_id is not None:
            raise_in_thread(self._thread_id, TaskRevoked)
            return True
        return False

    def wrap(self, fn: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """The function the runner calls in place of the task's own (or `fn`, which calls
        it): it returns the verdict (`None` when the loop had already ended the call: its
        result is discarded)."""
        fn = fn or self.task.fn
        if self.task.is_async:

            async def call_async(*args: Any, **kwargs: Any) -> Verdict | None:
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
                        return await self.afinish(outcome_of(exc, format_traceback(exc)))
                    return await self.afinish(Succeeded(value))

            return call_async

        def call_sync(*args: Any, **kwargs: Any) -> Verdict | None:
            with running(self.context):
                self._thread_id = threading.get_ident()
                self.start()
                try:
                    value = fn(*args, **kwargs)
                except Exception as exc:
                    return self.finish(outcome_of(exc, format_traceback(exc)))
                return self.finish(Succeeded(value))

        return call_sync

    def start(self) -> None:
        if signals.task_prerun.receivers:  # else skip building the arguments
            message = self.context.message
            signals.task_prerun.send(
                sender=self.sender,
                task_id=message.id,
                task=self.sender,
                args=list(message.args),
                kwargs=dict(message.kwargs),
            )
        if self._middleware.wants("before_run"):
            self._middleware.call("before_run", self.context)

    def judge(self, outcome: Outcome) -> Verdict:
        """The verdict on `outcome`: the one place the task's retry policy is applied."""
        if self.was_terminated(outcome):
            return Verdict(outcome, Ack(), terminated=True)
        message = self.context.message
        decision = decide(outcome, self.task.options.retry, message.retries, self._rng)
        if isinstance(outcome, RetryRequested) and isinstance(decision, DeadLetterAs):
            outcome = _failing(outcome)
        return Verdict(outcome, decision)

    def ended(self, outcome: Outcome) -> Verdict:
        """The verdict of a call that could not end itself (a process of its own, a hard time
        limit), judged and signalled on the loop, unless the call had sent its signals."""
        verdict = self.finish(outcome)
        return verdict if verdict is not None else self.judge(outcome)

    def finish(self, outcome: Outcome) -> Verdict | None:
        """Judge the call and send the signals for how it ended; `None` if it had ended."""
        if self.finished:
            return None
        self.finished = True
        verdict = self.judge(outcome)
        state, retval = self._signal(verdict)
        pending = self._after(state, retval)
        if inspect.isawaitable(pending):
            _discard(pending)
            logger.error(
                "task %s[%s]: its after_signal returned an awaitable outside the loop; not run",
                self.task.name,
                self.context.id,
            )
        self._after_run(state, retval)
        self._postrun(state, retval)
        return verdict

    async def afinish(self, outcome: Outcome) -> Verdict | None:
        """`finish` on the loop, for an async task: its `after_signal` may be awaited."""
        if self.finished:
            return None
        self.finished = True
        verdict = self.judge(outcome)
        state, retval = self._signal(verdict)
        pending = self._after(state, retval)
        if inspect.isawaitable(pending):
            try:
                await pending
            except Exception:
                logger.exception(
                    "task %s[%s]: after_signal failed", self.task.name, self.context.id
                )
        self._after_run(state, retval)
        self._postrun(state, retval)
        return verdict

    def _signal(self, verdict: Verdict) -> tuple[str, Any]:
        """Send the signal of how the call ended; its state and the value or exception."""
        outcome = verdict.outcome
        message = self.context.message
        sender = self.sender
        retval: Any = None
        if isinstance(outcome, Succeeded):
            state, retval = "SUCCESS", outcome.value
            signals.task_success.send(sender=sender, result=outcome.value)
        elif verdict.terminated:
            assert isinstance(outcome, Failed)
            state, retval = "REVOKED", outcome.exception
            signals.task_revoked.send(
                sender=sender,
                request=self.context,
                terminated=True,
                signum=self.terminating,
                expired=False,
            )
        elif isinstance(outcome, Failed | RetryRequested) and verdict.retries:
            state = "RETRY"
            exc = outcome.exception
            retval = exc
            signals.task_retry.send(
                sender=sender,
                request=self.context,
                reason=exc,
                einfo=_einfo(exc, outcome.traceback),
            )
            if self._middleware.wants("on_retry"):
                self._middleware.call("on_retry", self.context, exc)
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

    def _after_run(self, state: str, retval: Any) -> None:
        if self._middleware.wants("after_run"):
            self._middleware.call("after_run", self.context, state, retval)

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


def _failing(outcome: RetryRequested) -> RetryRequested:
    """A retry that will not be made (past max_retries) is the task's failure: the traceback
    of its exception, formatted now (`format_traceback` skips a `Retry`'s, for speed), goes to
    the log, the result, `task_failure` and the dead letter."""
    exc = outcome.exception
    if exc is None or outcome.traceback:
        return outcome
    return replace(outcome, traceback="".join(traceback.format_exception(exc)))


def _einfo(exc: BaseException | None, trace: str | None) -> ExceptionInfo | None:
    return None if exc is None else ExceptionInfo(exc, trace or "")
