"""Celery's exceptions (`celery.exceptions`), with hare's own classes where hare raises them.

An `except` clause written for Celery must catch what hare raises, so these names *are*
hare's classes rather than look-alikes:

* `SoftTimeLimitExceeded`, `TimeLimitExceeded`: `hare.errors`' (raised by hare's runner);
* `WorkerLostError`: `hare.errors`' (a prefork child died while running the task);
* `TaskRevokedError`: `hare.errors.TaskRevoked` (a revoked, expired or terminated task);
* `OperationalError`: `hare.errors.BrokerError` (kombu's "the broker failed" error: no
  connection, an unconfirmed publish).

The task predicates keep Celery's signatures; hare_compat's task runner turns them into
hare's control signals (`hare.errors.Retry`, `Reject`, `Ignore`) for the worker:

* `Retry`: the worker republishes the task (same id, `retries + 1`) after `when`;
* `Reject(reason)`: dead-lettered to `<queue>.dead`, never retried. `Reject(requeue=True)`
  gives the delivery back with `basic.reject(requeue=True)`, as Celery's worker does: the
  broker delivers it again with `request.delivery_info["redelivered"]` set, and each requeue
  counts against the delivery limit (then the message is dead-lettered, never a hot loop);
* `Ignore`: acked, nothing recorded (it is also a `hare.errors.Ignore`).
"""

from __future__ import annotations

import builtins
import numbers
from datetime import datetime
from typing import Any, NoReturn

from hare.errors import BrokerError, ConfigurationError, TaskRevoked
from hare.errors import Ignore as _HareIgnore
from hare.errors import SoftTimeLimitExceeded as SoftTimeLimitExceeded
from hare.errors import TimeLimitExceeded as TimeLimitExceeded
from hare.errors import WorkerLostError as WorkerLostError

__all__ = (
    "AlreadyRegistered",
    "AlwaysEagerIgnored",
    "BackendError",
    "BackendGetMetaError",
    "BackendStoreError",
    "CDeprecationWarning",
    "CPendingDeprecationWarning",
    "CeleryError",
    "CeleryWarning",
    "ChordError",
    "DuplicateNodenameWarning",
    "DuplicateTaskNameWarning",
    "FixupWarning",
    "Ignore",
    "ImproperlyConfigured",
    "IncompleteStream",
    "InvalidTaskError",
    "MaxRetriesExceededError",
    "NotConfigured",
    "NotRegistered",
    "OperationalError",
    "QueueNotFound",
    "Reject",
    "Retry",
    "RetryTaskError",
    "SecurityError",
    "SecurityWarning",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskPredicate",
    "TaskRevokedError",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
    "WorkerShutdown",
    "WorkerTerminate",
    "reraise",
)


def reraise(tp: type[BaseException], value: BaseException, tb: Any = None) -> NoReturn:
    """Re-raise `value` with traceback `tb` (Celery's helper)."""
    if value.__traceback__ is not tb:
        raise value.with_traceback(tb)
    raise value


#: kombu's "the broker did not do it": hare raises `BrokerError` (and its subclasses).
OperationalError = BrokerError
#: What `get()` raises for a revoked task and what a terminated task fails with.
TaskRevokedError = TaskRevoked


# -- warnings ---------------------------------------------------------------------------------


class CeleryWarning(UserWarning):
    """Base class for all Celery warnings."""


class AlwaysEagerIgnored(CeleryWarning):
    """send_task ignores the task_always_eager option."""


class DuplicateNodenameWarning(CeleryWarning):
    """Multiple workers are using the same nodename."""


class DuplicateTaskNameWarning(CeleryWarning):
    """Multiple callables are registered under the same task name."""


class FixupWarning(CeleryWarning):
    """Fixup related warning."""


class NotConfigured(CeleryWarning):
    """No configuration was found."""


class SecurityWarning(CeleryWarning):
    """Potential security issue found."""


class CPendingDeprecationWarning(PendingDeprecationWarning):
    """Warning of pending deprecation."""


class CDeprecationWarning(DeprecationWarning):
    """Warning of deprecation."""


# -- errors -----------------------------------------------------------------------------------


class CeleryError(Exception):
    """Base class for all Celery errors."""


class TaskPredicate(CeleryError):
    """Base class for the exceptions a task raises to tell the worker what to do."""


class Retry(TaskPredicate):
    """The task is to be retried later (raised by `Task.retry`).

    `when` is a number of seconds or a datetime; `exc` the exception that caused the retry.
    """

    message: str | None = None
    exc: BaseException | None = None
    when: float | datetime | None = None

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | str | None = None,
        when: float | datetime | None = None,
        is_eager: bool = False,
        sig: Any = None,
        **kwargs: Any,
    ) -> None:
        self.message = message
        self.excs: str | None
        if isinstance(exc, str):
            self.exc, self.excs = None, exc
        else:
            self.exc, self.excs = exc, (repr(exc) if exc is not None else None)
        self.when = when
        self.is_eager = is_eager
        self.sig = sig
        #: Set by `Task.retry`: the next attempt's arguments when they change, and what the
        #: eager runner needs to run it again (see hare_compat.app.trace).
        self.retry_args: tuple[Any, ...] | None = None
        self.retry_kwargs: dict[str, Any] | None = None
        #: `self.retry(expires=, queue=)`: when the next attempt expires, and its queue.
        self.retry_expires: Any = None
        self.retry_queue: str | None = None
        self.retries: int | None = None
        #: Set by `Task.retry`: the limit it checked `retries` against (None: no limit).
        self.max_retries: int | None = None
        super().__init__(self, exc, when, **kwargs)

    def humanize(self) -> str:
        if isinstance(self.when, numbers.Number):
            return f"in {self.when}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        if self.excs:
            return f"Retry {self.humanize()}: {self.excs}"
        return f"Retry {self.humanize()}"

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.message, self.exc, self.when)


RetryTaskError = Retry


class Ignore(TaskPredicate, _HareIgnore):
    """Raised by a task to be forgotten: the worker acks it and records nothing."""


class Reject(TaskPredicate):
    """Raised by a task to reject its message (dead-lettered; see the module docstring)."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __repr__(self) -> str:
        return f"reject requeue={self.requeue}: {self.reason}"


class ImproperlyConfigured(CeleryError, ConfigurationError):
    """Celery is somehow improperly configured (also a hare `ConfigurationError`)."""


class SecurityError(CeleryError):
    """Security related exception."""


class TaskError(CeleryError):
    """Task related errors."""


class QueueNotFound(KeyError, TaskError):
    """Task routed to a queue not in `conf.task_queues`."""


class IncompleteStream(TaskError):
    """Found the end of a stream of data, but the data isn't complete."""


class NotRegistered(KeyError, TaskError):
    """The task is not registered."""

    def __repr__(self) -> str:
        return f"Task of kind {self} never registered, please make sure it's imported."


class AlreadyRegistered(TaskError):
    """The task is already registered."""


class TimeoutError(TaskError, builtins.TimeoutError):
    """The operation timed out (`AsyncResult.get(timeout=...)`); also a builtin TimeoutError."""


class MaxRetriesExceededError(TaskError):
    """The task's max retry limit has been exceeded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.task_args = kwargs.pop("task_args", [])
        self.task_kwargs = kwargs.pop("task_kwargs", {})
        super().__init__(*args, **kwargs)


class InvalidTaskError(TaskError):
    """The task has invalid data or ain't properly constructed."""


class ChordError(TaskError):
    """A task part of the chord raised an exception."""


class BackendError(Exception):
    """An issue writing or reading to/from the backend."""


class BackendGetMetaError(BackendError):
    """An issue reading from the backend."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.task_id = kwargs.get("task_id", "")
        super().__init__(*args)


class BackendStoreError(BackendError):
    """An issue writing to the backend."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state = kwargs.get("state", "")
        self.task_id = kwargs.get("task_id", "")
        super().__init__(*args)


class Terminated(Exception):
    """The worker processing a job has been terminated by user request."""


class WorkerTerminate(SystemExit):
    """Signals that the worker should terminate immediately."""


class WorkerShutdown(SystemExit):
    """Signals that the worker should perform a warm shutdown."""
