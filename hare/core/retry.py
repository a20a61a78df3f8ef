"""Retry policy: what to do with a delivery once its task ran. Pure: the rng is an argument.

Semantics follow Celery's, so a Celery user's expectations hold:

* only exceptions listed in `autoretry_for` (and not in `dont_autoretry_for`) are retried
  automatically; any other exception fails the task for good (a dead letter);
* `raise Retry(countdown=|eta=)` asks for a retry explicitly;
* `retries` counts retries already made (0 on the first run); once it reaches `max_retries`
  the next failure is final (`max_retries=None` retries forever);
* the automatic delay is `default_retry_delay`, or with `retry_backoff` Celery's
  `min(retry_backoff_max, factor · 2^retries)`, with full jitter (uniform over [0, delay])
  when `retry_jitter` is on;
* `Reject` is final and never retried (dead-lettered as `rejected`, or with the reason a
  `DeadLetterError` names);
* a failure its task marked as the end of its own retries (`mark_retries_exhausted`: Celery's
  `self.retry` past `max_retries`, through hare_compat) is final too, with the same reason
  (`retries-exhausted`) as a `Retry` past `max_retries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hare.core.outcome import Failed, Ignored, Outcome, Rejected, RetryRequested, Succeeded
from hare.errors import ConfigurationError

__all__ = (
    "Ack",
    "DeadLetterAs",
    "Decision",
    "RETRIES_EXHAUSTED",
    "Requeue",
    "RetryAt",
    "RetryIn",
    "RetryPolicy",
    "Uniform",
    "backoff",
    "decide",
    "retry_limit",
)


#: The dead-letter reason of a task that failed once its retries were used up, however it
#: retried (a `Retry`, `autoretry_for`, or hare_compat's `self.retry`).
RETRIES_EXHAUSTED = "retries-exhausted"


class Uniform(Protocol):
    """The one thing the maths needs from an rng (e.g. `random.Random().uniform`)."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """A task's retry settings (Celery's names and defaults)."""

    max_retries: int | None = 3
    default_retry_delay: float = 180.0
    #: False: a fixed `default_retry_delay`; True: exponential with factor 1; a number: factor.
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_retries is not None and self.max_retries < 0:
            raise ConfigurationError("max_retries must be >= 0 or None")
        if self.default_retry_delay < 0 or self.retry_backoff_max < 0:
            raise ConfigurationError("retry delays must not be negative")
        if not isinstance(self.retry_backoff, bool) and self.retry_backoff <= 0:
            raise ConfigurationError("retry_backoff must be True, False or a positive factor")
        for kind in (*self.autoretry_for, *self.dont_autoretry_for):
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigurationError(f"autoretry_for needs exception classes, got {kind!r}")


@dataclass(frozen=True, slots=True)
class Ack:
    """Done: acknowledge the delivery."""


@dataclass(frozen=True, slots=True)
class RetryIn:
    """Publish the task again with `retries + 1`, due `seconds` from now."""

    seconds: float


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Publish the task again with `retries + 1`, due at `eta`."""

    eta: datetime


@dataclass(frozen=True, slots=True)
class Requeue:
    """Hand the delivery back to its queue as it is (`Reject(requeue=True)`)."""


@dataclass(frozen=True, slots=True)
class DeadLetterAs:
    """Fail for good: dead-letter the delivery with `reason` (the worker adds the details)."""

    reason: str


Decision = Ack | RetryIn | RetryAt | Requeue | DeadLetterAs


def backoff(policy: RetryPolicy, retries: int, rng: Uniform) -> float:
    """Seconds to wait before retry number `retries + 1` of an automatic retry.

    >>> import random
    >>> backoff(RetryPolicy(retry_backoff=2.0, retry_jitter=False), 3, random.Random())
    16.0
    """
    if policy.retry_backoff is False:
        return policy.default_retry_delay
    factor = 1.0 if policy.retry_backoff is True else float(policy.retry_backoff)
    # Cap the exponent before computing: 2**retries overflows a float past ~1024 retries.
    countdown = min(policy.retry_backoff_max, factor * 2.0 ** min(retries, 1000))
    if policy.retry_jitter:
        countdown = rng.uniform(0.0, countdown)
    return max(0.0, countdown)


def decide(outcome: Outcome, policy: RetryPolicy, retries: int, rng: Uniform) -> Decision:
    """How to settle a delivery whose task ran `retries` retries ago and ended in `outcome`."""
    if isinstance(outcome, Succeeded | Ignored):
        return Ack()
    if isinstance(outcome, Rejected):
        return Requeue() if outcome.requeue else DeadLetterAs(outcome.dead_reason)
    if isinstance(outcome, RetryRequested):
        limit = retry_limit(outcome, policy)
        if limit is not None and retries >= limit:
            return DeadLetterAs(RETRIES_EXHAUSTED)
        if outcome.eta is not None:
            return RetryAt(outcome.eta)
        if outcome.countdown is not None:
            return RetryIn(max(0.0, outcome.countdown))
        return RetryIn(policy.default_retry_delay)
    if outcome.retries_exhausted:
        return DeadLetterAs(RETRIES_EXHAUSTED)
    if _autoretries(policy, outcome):
        if policy.max_retries is not None and retries >= policy.max_retries:
            return DeadLetterAs(RETRIES_EXHAUSTED)
        return RetryIn(backoff(policy, retries, rng))
    return DeadLetterAs("failed")


def retry_limit(outcome: Outcome, policy: RetryPolicy) -> int | None:
    """How many retries a task that ended in `outcome` may make (None: no limit): the
    `max_retries` its `Retry` names, else its policy's."""
    if isinstance(outcome, RetryRequested) and outcome.max_retries is not None:
        return outcome.max_retries
    return policy.max_retries


def _autoretries(policy: RetryPolicy, outcome: Failed) -> bool:
    exc = outcome.exception
    return isinstance(exc, policy.autoretry_for) and not isinstance(exc, policy.dont_autoretry_for)
