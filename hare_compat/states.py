"""Celery's task states (`celery.states`): the names, the sets and their precedence.

The strings are the ones hare stores and Celery's result backends use, so results written by
either side read the same.
"""

from __future__ import annotations

from hare.results.state import EXCEPTION_STATES as EXCEPTION_STATES
from hare.results.state import FAILURE as FAILURE
from hare.results.state import PENDING as PENDING
from hare.results.state import PROPAGATE_STATES as PROPAGATE_STATES
from hare.results.state import READY_STATES as READY_STATES
from hare.results.state import RETRY as RETRY
from hare.results.state import REVOKED as REVOKED
from hare.results.state import STARTED as STARTED
from hare.results.state import SUCCESS as SUCCESS

__all__ = (
    "ALL_STATES",
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "UNREADY_STATES",
    "precedence",
    "state",
)

RECEIVED = "RECEIVED"
REJECTED = "REJECTED"
IGNORED = "IGNORED"

UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED})

PRECEDENCE: list[str | None] = [
    SUCCESS,
    FAILURE,
    None,
    REVOKED,
    STARTED,
    RECEIVED,
    REJECTED,
    RETRY,
    PENDING,
]
PRECEDENCE_LOOKUP = {name: index for index, name in enumerate(PRECEDENCE)}
NONE_PRECEDENCE = PRECEDENCE_LOOKUP[None]


def precedence(state: str) -> int:
    """The precedence index of `state`: lower means higher precedence; custom states rank
    between FAILURE and REVOKED."""
    return PRECEDENCE_LOOKUP.get(state, NONE_PRECEDENCE)


class state(str):
    """A state that compares by precedence: `state(PENDING) < state(SUCCESS)`."""

    def __gt__(self, other: str) -> bool:
        return precedence(self) < precedence(other)

    def __ge__(self, other: str) -> bool:
        return precedence(self) <= precedence(other)

    def __lt__(self, other: str) -> bool:
        return precedence(self) > precedence(other)

    def __le__(self, other: str) -> bool:
        return precedence(self) >= precedence(other)
