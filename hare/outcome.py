"""What happened when a task ran, as a value the worker settles the delivery by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ("Failed", "Outcome", "Rejected", "RetryRequested", "Succeeded")


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The task returned."""

    value: Any


@dataclass(frozen=True, slots=True)
class Failed:
    """The task raised an exception (a candidate for a retry, else a dead letter)."""

    exception: BaseException
    traceback: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The task raised `Reject`: fail for good, no retry."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryRequested:
    """The task raised `Retry`: run it again after `countdown` seconds or at `eta`."""

    countdown: float | None = None
    eta: datetime | None = None
    exception: BaseException | None = None
    traceback: str | None = None
    max_retries: int | None = None


Outcome = Succeeded | Failed | Rejected | RetryRequested
