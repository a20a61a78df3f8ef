"""Middleware: objects whose hooks run around every publish, every run and a worker's life.

A middleware subclasses `Middleware` and overrides the hooks it needs (any object with some of
these methods will do: a hook it lacks is skipped). Register it on the app,
`Hare(..., middleware=[Audit()])` or `app.add_middleware(Audit())`, in every process that
publishes or works (a worker imports the app, so registering at import time is enough; a
prefork child gets the app's middleware by importing it too).

Where each hook runs, and in which order (N middleware registered as m1..mN):

=====================  ==================================================  ================
hook                   where, in which context                             order
=====================  ==================================================  ================
`before_publish`       before a task message is sent (after Celery's       m1 .. mN
                       `before_task_publish`); may return a replacement
                       message (e.g. with headers added)
`after_publish`        once the broker confirmed it (after                 mN .. m1
                       `after_task_publish`)
`before_run`           in the context that runs the task (its loop for     m1 .. mN
                       an async task, its pool thread or prefork child for
                       a sync one), after `task_prerun`
`after_run`            same context, after the outcome's signal            mN .. m1
                       (`task_success`, `task_retry`, `task_failure`,
                       `task_revoked`), before `task_postrun`
`on_retry`             same context, right after `task_retry`              m1 .. mN
`on_dead_letter`       on the worker's loop, once a delivery's dead        m1 .. mN
                       letter is confirmed in `<queue>.dead` (also for
                       messages that never reached a task: undecodable,
                       unknown task)
`on_worker_start`      on the worker's loop, after `worker_ready`          m1 .. mN
`on_worker_stop`       on the worker's loop, after the drain, before       mN .. m1
                       `worker_shutdown`
=====================  ==================================================  ================

Per run, a middleware may keep values of its own in `request.notes` (a dict), from
`before_run` until the delivery is settled. While the worker publishes for a run (its retry,
the callbacks and next chain step that follow it) it makes the run's request current, so
`before_publish` finds it with `hare.context.current()` (as it does for a publish made inside
the task); a tracer parents such a message on the run (`hare.tracing`). A prefork child's
notes stay in the child.

The `after_*` hooks and `on_worker_stop` run in reverse order, so the middleware registered
first wraps all the others (as nested `with` blocks do): a tracer registered first sees the
whole of what the others do.

Hooks are called synchronously and should be quick: on an async task's loop a slow hook
delays every task of the worker. A hook that raises is logged with the middleware's name and
the hook's, and everything goes on as if it had not been registered for that call: the message
is still published, the task still runs, the delivery is still settled. Middleware observes
and decorates; it cannot veto (a task decides its own fate with `Reject`, `Ignore`, `Retry`).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hare.core.message import Message
    from hare.worker.request import Request
    from hare.worker.worker import Worker

__all__ = ("DeadLettered", "Middleware", "Middlewares")

logger = logging.getLogger("hare.middleware")

#: Every hook, in the order a task meets them.
HOOKS = (
    "before_publish",
    "after_publish",
    "before_run",
    "after_run",
    "on_retry",
    "on_dead_letter",
    "on_worker_start",
    "on_worker_stop",
)
#: Hooks called last-registered first.
_REVERSED = frozenset({"after_publish", "after_run", "on_worker_stop"})


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """What `on_dead_letter` is told: which message went to which dead-letter queue, why."""

    #: The queue the delivery came from (the dead letter is in `<queue>.dead`).
    queue: str
    #: The task's name and id from the message's headers ("?" when it had none).
    task: str
    id: str
    #: The dead letter's reason (`failed`, `max-retries`, `unknown-task`, ...) and detail.
    reason: str
    detail: str
    #: Attempts made, when known.
    attempts: int | None


class Middleware:
    """The hooks a middleware may override; each does nothing here.

    >>> class Audit(Middleware):
    ...     def before_run(self, request):
    ...         print("running", request.task)
    """

    def before_publish(self, message: Message, queue: str) -> Message | None:
        """Before `message` is sent to `queue`: return a replacement, or None to keep it."""
        return None

    def after_publish(self, message: Message, queue: str) -> None:
        """After the broker confirmed `message` (as sent, after `before_publish`)."""

    def before_run(self, request: Request) -> None:
        """Before the task of `request` runs, in the context that runs it."""

    def after_run(self, request: Request, state: str, value: Any) -> None:
        """After it ran: `state` is SUCCESS, RETRY, FAILURE, REVOKED, REJECTED or IGNORED;
        `value` the task's return value or its exception (None when there is neither)."""

    def on_retry(self, request: Request, exception: BaseException | None) -> None:
        """The task will be retried (its next attempt is published after the run)."""

    def on_dead_letter(self, dead: DeadLettered) -> None:
        """A delivery's dead letter was confirmed in its `<queue>.dead`."""

    def on_worker_start(self, worker: Worker) -> None:
        """The worker consumes (after `worker_ready`)."""

    def on_worker_stop(self, worker: Worker) -> None:
        """The worker drained (before `worker_shutdown`)."""


def _name(middleware: object) -> str:
    kind = type(middleware)
    return f"{kind.__module__}.{kind.__qualname__}"


class Middlewares:
    """An app's middleware, in registration order, and the calls of each hook.

    Each hook's callers are worked out when middleware is added, so a hook no middleware
    overrides costs one truth test (`if app.middleware.before_run:`-style checks use
    `wants`).
    """

    def __init__(self, middleware: Iterable[object] = ()) -> None:
        self._items: tuple[object, ...] = ()
        self._lock = threading.Lock()
        self._hooks: dict[str, tuple[tuple[str, Any], ...]] = {hook: () for hook in HOOKS}
        for item in middleware:
            self.add(item)

    def __iter__(self) -> Iterator[object]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<Middlewares {[_name(m) for m in self._items]}>"

    def add(self, middleware: object) -> None:
        """Register `middleware` after those registered already (twice: once)."""
        if isinstance(middleware, type):
            raise TypeError(
                f"add_middleware takes an instance: {middleware.__qualname__}() rather than "
                f"{middleware.__qualname__}"
            )
        if not any(getattr(middleware, hook, None) is not None for hook in HOOKS):
            raise TypeError(f"{_name(middleware)} has none of the middleware hooks {HOOKS}")
        with self._lock:
            if any(item is middleware for item in self._items):
                return
            self._items = (*self._items, middleware)
            self._hooks = {hook: self._callers(hook) for hook in HOOKS}

    def _callers(self, hook: str) -> tuple[tuple[str, Any], ...]:
        base = getattr(Middleware, hook)
        callers = []
        for item in self._items:
            method = getattr(item, hook, None)
            if method is None or getattr(method, "__func__", None) is base:
                continue  # not there, or Middleware's own no-op: nothing to call
            callers.append((_name(item), method))
        return tuple(reversed(callers)) if hook in _REVERSED else tuple(callers)

    def wants(self, hook: str) -> bool:
        """Whether any middleware overrides `hook` (so a caller may skip building arguments)."""
        return bool(self._hooks[hook])

    def call(self, hook: str, *args: Any) -> None:
        """Call `hook` on every middleware that has it, in the hook's order; a raise is
        logged and the next one runs."""
        for name, fn in self._hooks[hook]:
            try:
                answer = fn(*args)
            except Exception:
                logger.exception("middleware %s: %s raised; carrying on without it", name, hook)
                continue
            if inspect.isawaitable(answer):
                _refuse_awaitable(name, hook, answer)

    def before_publish(self, message: Message, queue: str) -> Message:
        """`message` as the `before_publish` hooks leave it."""
        for name, fn in self._hooks["before_publish"]:
            try:
                replaced = fn(message, queue)
            except Exception:
                logger.exception(
                    "middleware %s: before_publish raised; the message is sent as it was", name
                )
                continue
            if inspect.isawaitable(replaced):
                _refuse_awaitable(name, "before_publish", replaced)
            elif replaced is not None:
                message = _checked_message(name, message, replaced)
        return message


def _checked_message(name: str, message: Message, replaced: object) -> Message:
    if isinstance(replaced, type(message)):
        return replaced
    logger.error(
        "middleware %s: before_publish returned %s, not a Message or None; ignored",
        name,
        type(replaced).__name__,
    )
    return message


def _refuse_awaitable(name: str, hook: str, answer: Any) -> None:
    close = getattr(answer, "close", None)
    if close is not None:
        close()
    logger.error(
        "middleware %s: %s returned an awaitable; hooks are called synchronously (do the "
        "asynchronous part in a task of its own), so it was not run",
        name,
        hook,
    )
