"""What happened when a task ran, as a value the worker settles the delivery by."""

from __future__ import annotations

import traceback as traceback_module
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from hare.core.values import utc, warn_if_naive
from hare.errors import Ignore, Reject, Retry

__all__ = (
    "Failed",
    "format_traceback",
    "mark_retries_exhausted",
    "Ignored",
    "Outcome",
    "Rejected",
    "RetryRequested",
    "Succeeded",
    "outcome_of",
)


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The task returned."""

    value: Any


@dataclass(frozen=True, slots=True)
class Failed:
    """The task raised an exception (a candidate for a retry, else a dead letter)."""

    exception: BaseException
    traceback: str
    #: The exception ends a task whose own retry logic gave up (`mark_retries_exhausted`).
    retries_exhausted: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """The task raised `Reject`: fail for good, no retry."""

    reason: str
    #: What the FAILURE result records: the task's own exception (see `outcome_of`), or
    #: None for a plain `Reject(reason)`.
    exception: BaseException | None = None
    #: `Reject(requeue=True)`: back to the queue, to be delivered again.
    requeue: bool = False
    #: The dead letter's reason: `rejected`, or a `DeadLetterError`'s own.
    dead_reason: str = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryRequested:
    """The task raised `Retry`: run it again after `countdown` seconds or at `eta`."""

    countdown: float | None = None
    eta: datetime | None = None
    exception: BaseException | None = None
    traceback: str | None = None
    max_retries: int | None = None
    #: The next attempt's arguments, when the task asked for different ones.
    args: tuple[Any, ...] | None = None
    kwargs: dict[str, Any] | None = None
    #: When the next attempt expires (seconds from its sending, or a datetime), and its queue.
    expires: float | datetime | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """The task raised `Ignore`: ack, record nothing."""


Outcome = Succeeded | Failed | Rejected | RetryRequested | Ignored


def format_traceback(exc: Exception) -> str:
    """The traceback of `exc` (being handled) as text, formatted once per exception.

    `Retry`, `Reject` and `Ignore` are the task steering the worker, not failures: their
    traceback is not worth the cost of formatting (a quarter of a worker's time when every
    task retries, measured).
    """
    cached: str | None = getattr(exc, "__hare_traceback__", None)
    if cached is None:
        if isinstance(exc, Retry | Reject | Ignore):
            cached = ""
        else:
            cached = traceback_module.format_exc()
        try:
            exc.__hare_traceback__ = cached  # type: ignore[attr-defined]
        except AttributeError:  # an exception class with __slots__
            pass
    return cached


_EXHAUSTED = "__hare_retries_exhausted__"
_E = TypeVar("_E", bound=BaseException)


def mark_retries_exhausted(exc: _E) -> _E:
    """Mark `exc` as the end of a task whose retries are used up, and return it.

    For a front end that counts retries itself (hare_compat's `self.retry` raises
    `MaxRetriesExceededError`, or the task's own exception, as Celery's does): the task fails
    with `exc` as it is, and the worker dead-letters it with reason `retries-exhausted`, as
    it does a `Retry` past `max_retries`.
    """
    try:
        setattr(exc, _EXHAUSTED, True)
    except AttributeError:  # an exception class with __slots__: a plain failure then
        pass
    return exc


def outcome_of(exc: Exception, traceback: str) -> Outcome:
    """What a task that raised `exc` (with `traceback` formatted) asks the worker to do."""
    if isinstance(exc, Reject):
        return Rejected(exc.reason, _rejected_as(exc), exc.requeue, exc.dead_reason)
    if isinstance(exc, Ignore):
        return Ignored()
    if isinstance(exc, Retry):
        warn_if_naive("Retry(eta=)", exc.eta)
        return RetryRequested(
            countdown=exc.countdown,
            eta=None if exc.eta is None else utc(exc.eta),
            exception=exc.exc,
            traceback=traceback,
            max_retries=exc.max_retries,
            args=exc.args_override,
            kwargs=exc.kwargs_override,
            expires=exc.expires,
            queue=exc.queue,
        )
    return Failed(exc, traceback, getattr(exc, _EXHAUSTED, False) is True)


def _rejected_as(exc: Reject) -> BaseException:
    """The exception a rejected task's result records: `exc`, or, when `exc` was raised
    from another framework's own `Reject` (hare_compat turns Celery's `Reject` into hare's
    with `raise ... from`), that one, so its readers rebuild the class the task raised."""
    cause = exc.__cause__
    if isinstance(cause, Exception) and type(cause).__name__ == "Reject":
        return cause
    return exc
