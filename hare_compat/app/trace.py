"""Running a compat task the way Celery's tracer does: request, hooks, predicates, signals.

One traced call is a generator (`Tracer.steps`) that yields whatever must be awaited (an
async task's coroutine, an async hook, a rate-limit wait); `drive` runs it for a sync task,
`adrive` for an async one (`hare_compat.app.steps`), so the rules live in one place.

Order (Celery's `build_tracer`): `task_prerun`, `before_start`, the task (`__call__` when
overridden, else `run`), then `on_success`, `on_retry` or `on_failure`, then the
`task_success` / `task_retry` / `task_failure` signal, then `after_return` (not after a retry,
a `Reject` or an `Ignore`), then `task_postrun`. In a worker, hare sends the signals around
the task's wrapper (`hare_compat.app.worker_entry`), and calls the hare task's
`after_signal` between the outcome's signal and `task_postrun`: the wrapper leaves
`after_return` and the end of `self.request` to it (`take_awaiting`), so receivers of
`task_success` still see `sender.request`. In eager
mode (`apply`) there is no worker, so the tracer sends the signals itself, in that order.

In a worker the outcome becomes one of hare's control signals: a `Retry` becomes
`hare.errors.Retry` (the worker republishes the task, same id, `retries + 1`), `Reject`
becomes `hare.errors.Reject` (dead-lettered), `Ignore` is `hare.errors.Ignore` (acked).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import hare_compat.states as states
from hare import signals
from hare.core.values import utc, warn_if_naive
from hare.errors import Ignore as HareIgnore
from hare.errors import Reject as HareReject
from hare.errors import Retry as HareRetry
from hare.errors import TaskRevoked
from hare.worker.einfo import ExceptionInfo
from hare.worker.tracelog import FAILURE as LOG_FAILURE
from hare.worker.tracelog import RECEIVED as LOG_RECEIVED
from hare.worker.tracelog import REJECTED as LOG_REJECTED
from hare.worker.tracelog import RETRY as LOG_RETRY
from hare.worker.tracelog import SUCCESS as LOG_SUCCESS
from hare_compat._state import pop_request, push_request
from hare_compat.app.request import PENDING_UPDATES, Context
from hare_compat.app.steps import Steps
from hare_compat.app.steps import adrive as adrive
from hare_compat.app.steps import drive as drive
from hare_compat.app.task_canvas import canvas_object
from hare_compat.exceptions import Reject, Retry

#: Where Celery's worker logs each task's lines: (received, ran). hare_compat apps' do too.
CELERY_LOGGERS = ("celery.worker.strategy", "celery.app.trace")

if TYPE_CHECKING:
    from hare_compat.app.task import Task

__all__ = (
    "CELERY_LOGGERS",
    "LOG_FAILURE",
    "LOG_RECEIVED",
    "LOG_REJECTED",
    "LOG_RETRY",
    "LOG_SUCCESS",
    "EagerOutcome",
    "Tracer",
    "adrive",
    "dispatch_callbacks",
    "drive",
    "has_custom",
    "is_async_task",
    "take_awaiting",
)

logger = logging.getLogger("hare_compat.task")

#: States after which `after_return` is not called (Celery's IGNORE_STATES).
_NO_AFTER_RETURN = frozenset({states.IGNORED, states.RETRY, states.REJECTED})

#: States after which hare's worker calls `after_signal` with `after_return` still to run.
_AFTER_RETURN_STATES = frozenset({states.SUCCESS, states.FAILURE})


@dataclass(frozen=True, slots=True)
class EagerOutcome:
    """How an eager call ended: Celery's state, the value or exception, the traceback."""

    state: str
    retval: Any
    traceback: str | None = None


def has_custom(task: Task, attr: str) -> bool:
    """Whether `task`'s class overrides `attr` of hare_compat's base `Task`."""
    return type(task)._overrides(attr)


def is_async_task(task: Task) -> bool:
    """Whether running `task` means awaiting: its `run` (or overridden `__call__`) is async."""
    if has_custom(task, "__call__") and inspect.iscoroutinefunction(type(task).__call__):
        return True
    return inspect.iscoroutinefunction(getattr(task, "_orig_run", task.run))


class Tracer:
    """One traced call of `task` with `request`; see the module docstring."""

    def __init__(
        self,
        task: Task,
        request: Context,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        eager: bool,
        propagate: bool = False,
        is_async: bool = False,
    ) -> None:
        self.task = task
        self.request = request
        self.args = args
        self.kwargs = kwargs
        self.eager = eager
        self.propagate = propagate
        self.is_async = is_async
        self.fun: Callable[..., Any] = task if has_custom(task, "__call__") else task.run
        self.started = time.monotonic()
        #: How the task body ended (Celery's state and value), once it did.
        self.state: str | None = None
        self.retval: Any = None

    def steps(self) -> Steps:
        """The call, as a generator of what to await; returns the value (worker) or an
        `EagerOutcome` (eager)."""
        task, request, args, kwargs = self.task, self.request, self.args, self.kwargs
        task_id = request.id
        push_request(task, request)
        state: str | None = None
        retval: Any = None
        try:
            if self.eager:
                signals.task_prerun.send(
                    sender=task, task_id=task_id, task=task, args=args, kwargs=kwargs
                )
            else:
                # From here hare's `after_signal` ends the call (pops the request), whichever
                # way the body ends.
                _AWAITING.set(self)
                yield from self._wait_turn()
            tb: str | None = None
            try:
                yield from self._call(task.before_start, task_id, args, kwargs)
                retval = yield from _returned(self.fun(*args, **kwargs))
            except BaseException as exc:
                if isinstance(exc, Exception):
                    yield from self._flush_updates()
                state, tb = yield from self._on_exception(exc)
                retval = exc
            else:
                yield from self._flush_updates()
                state = states.SUCCESS
                yield from self._on_success(retval)
            self.state, self.retval = state, retval
            if not self.eager:
                if state == states.FAILURE:
                    raise retval
                return retval
            if state not in _NO_AFTER_RETURN:
                yield from self.after_return()
            return EagerOutcome(state, retval, tb)
        finally:
            if self.eager:
                signals.task_postrun.send(
                    sender=task,
                    task_id=task_id,
                    task=task,
                    args=args,
                    kwargs=kwargs,
                    retval=retval,
                    state=state,
                )
                pop_request(task)

    def after_return(self) -> Steps:
        """Celery's `after_return` hook for how the body ended."""
        request = self.request
        yield from self._hook(
            "after_return", self.state, self.retval, request.id, self.args, self.kwargs, None
        )

    def end(self, hare_state: str) -> Steps:
        """The rest of a worker call, after hare sent the outcome's signal: `after_return`
        (when the body succeeded or failed), then the request ends."""
        try:
            if hare_state in _AFTER_RETURN_STATES and self.state == hare_state:
                yield from self.after_return()
        finally:
            pop_request(self.task)

    def _wait_turn(self) -> Steps:
        limiter = self.task._rate_limiter
        if limiter is None:
            return
        if self.is_async:
            yield limiter.wait_async()
        else:
            limiter.wait_sync()

    def _flush_updates(self) -> Steps:
        """Let the `update_state` stores this call started on the loop finish first."""
        job = PENDING_UPDATES.get(self.request.id or "")
        if job is not None and self.is_async:
            yield asyncio.gather(job, return_exceptions=True)

    def _on_success(self, retval: Any) -> Steps:
        task = self.task
        if self.eager:
            dispatch_callbacks(task, self.request, retval)
        yield from self._hook("on_success", retval, self.request.id, self.args, self.kwargs)
        if self.eager:
            runtime = time.monotonic() - self.started
            signals.task_success.send(sender=task, result=retval, runtime=runtime)

    def _on_exception(self, exc: BaseException) -> Generator[Any, Any, tuple[str, str | None]]:
        """Run the hooks for `exc`; raise what the worker must see, or return the eager
        state and traceback."""
        task, request = self.task, self.request
        if isinstance(exc, HareIgnore):  # hare_compat's Ignore is one too
            if self.eager:
                return states.IGNORED, None
            raise exc
        if isinstance(exc, Reject | HareReject):
            if self.eager:
                logger.warning("Task %s[%s] %r", task.name, request.id, exc)
                return states.REJECTED, None
            raise _hare_reject(exc) from exc
        if not isinstance(exc, Exception):
            raise exc  # cancellation, KeyboardInterrupt, SystemExit: not the task's outcome
        if isinstance(exc, TaskRevoked) and not self.eager:
            raise exc  # revoke(terminate=True): Celery runs no handler of a terminated task
        if self.eager and self.propagate:
            raise exc
        trace = "".join(traceback.format_exception(exc))
        einfo = ExceptionInfo(exc, trace)
        args, kwargs = request.args, request.kwargs
        if isinstance(exc, Retry | HareRetry):
            yield from self._hook("on_retry", exc.exc, request.id, args, kwargs, einfo)
            if not self.eager:
                raise _hare_retry(task, exc) from exc
            signals.task_retry.send(sender=task, request=request, reason=exc, einfo=einfo)
            logger.info("Task %s[%s] retry: %s", task.name, request.id, exc)
            return states.RETRY, trace
        yield from self._hook("on_failure", exc, request.id, args, kwargs, einfo)
        if self.eager:
            signals.task_failure.send(
                sender=task,
                task_id=request.id,
                exception=exc,
                args=args,
                kwargs=kwargs,
                traceback=exc.__traceback__,
                einfo=einfo,
            )
            expected = bool(task.throws) and isinstance(exc, tuple(task.throws))
            logger.log(
                logging.INFO if expected else logging.ERROR,
                "Task %s[%s] raised %s: %r",
                task.name,
                request.id,
                "expected" if expected else "unexpected",
                exc,
            )
        return states.FAILURE, trace

    def _call(self, fn: Callable[..., Any], *args: Any) -> Steps:
        return (yield from _awaited(fn(*args)))

    def _hook(self, name: str, *args: Any) -> Steps:
        """Call the handler `name`; in a worker its errors are logged (the outcome stands),
        in eager mode they are raised, as in Celery. `Reject` always propagates."""
        try:
            yield from _awaited(getattr(self.task, name)(*args))
        except (Reject, HareReject):
            raise
        except Exception as exc:
            if self.eager:
                raise
            logger.exception(
                "Task %s[%s] %s handler raised: %r", self.task.name, self.request.id, name, exc
            )


def dispatch_callbacks(task: Task, request: Context, retval: Any) -> None:
    """Eager mode: send (or, with task_always_eager, run) the `link` callbacks with `retval`."""
    if not request.callbacks:
        return
    maybe_signature = canvas_object("maybe_signature")
    for callback in request.callbacks:
        signature = maybe_signature(callback, app=task._get_app())
        signature.apply_async(
            (retval,), parent_id=request.id, root_id=request.root_id or request.id
        )


def _returned(value: Any) -> Steps:
    """What the task's body returned: a coroutine (an `async def` body) is awaited; any
    other value, awaitable or not (a result handle), is the task's return value."""
    if inspect.iscoroutine(value):
        value = yield value
    return value


def _awaited(value: Any) -> Steps:
    """`yield` `value` to the driver to await when it is awaitable; its result."""
    if inspect.isawaitable(value):
        value = yield value
    return value


def _hare_retry(task: Task, exc: Retry | HareRetry) -> HareRetry:
    """The hare signal for a retry: hare's own passes as it is."""
    if isinstance(exc, HareRetry):
        return exc
    when = exc.when
    eta, countdown = None, None
    if isinstance(when, datetime):
        warn_if_naive("self.retry(eta=)", when)
        eta = utc(when)
    else:
        countdown = float(when if when is not None else task.default_retry_delay or 0)
    if when is None and exc.retries is None:
        # A `Retry` raised by hand, not by `self.retry()`: Celery would leave the task in
        # RETRY forever; hare runs it again after `default_retry_delay`.
        logger.warning(
            "Task %s[%s]: Retry raised without self.retry(); retrying in %ss",
            task.name,
            task.request.id,
            countdown,
        )
    return HareRetry(
        countdown,
        eta=eta,
        exc=exc.exc,
        max_retries=exc.max_retries,
        args=exc.retry_args,
        kwargs=exc.retry_kwargs,
        expires=exc.retry_expires,
        queue=exc.retry_queue,
    )


def _hare_reject(exc: Reject | HareReject) -> HareReject | HareRetry:
    if isinstance(exc, HareReject):
        return exc
    reason = str(exc.reason) if exc.reason is not None else "rejected by the task"
    return HareReject(reason, requeue=bool(exc.requeue))


#: The worker call of this context whose `after_return` waits for hare's `after_signal`.
_AWAITING: ContextVar[Tracer | None] = ContextVar("hare_compat_awaiting", default=None)


def take_awaiting(task: Task) -> Tracer | None:
    """The worker call of `task` in this context still waiting for hare's `after_signal` to
    end it, if any; it no longer waits."""
    tracer = _AWAITING.get()
    if tracer is None or tracer.task is not task:
        return None
    _AWAITING.set(None)
    return tracer
