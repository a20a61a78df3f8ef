"""A task's result as a value: its state, its return value or exception, when it finished.

States are Celery's (`PENDING`, `STARTED`, `RETRY`, `FAILURE`, `SUCCESS`, `REVOKED`, or any
custom state a task reports with `update_state`). Also the errors of the results layer (to be
moved into `hare.errors`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

__all__ = (
    "EXCEPTION_STATES",
    "FAILURE",
    "PENDING",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "GroupRef",
    "Ref",
    "TaskResult",
)

PENDING = "PENDING"
STARTED = "STARTED"
RETRY = "RETRY"
FAILURE = "FAILURE"
SUCCESS = "SUCCESS"
REVOKED = "REVOKED"

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
#: The states whose exception `get(propagate=True)` raises, as in Celery.
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})


@dataclass(frozen=True, slots=True)
class GroupRef:
    """The result of a group: its id and its members' results, in order."""

    id: str
    results: tuple[Ref, ...]


#: A result by its ids: a task's id, or a group's (what applying a signature returns).
Ref: TypeAlias = "str | GroupRef"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    """What a backend stores for one task id.

    `value` is the return value for `SUCCESS`, the exception for `FAILURE`/`RETRY`/`REVOKED`,
    and the `meta` mapping for custom states. `date_done` is set for ready states (a backend
    stamps the time of storing when it is missing).
    """

    task_id: str
    state: str
    value: Any = None
    traceback: str | None = None
    date_done: datetime | None = None
    children: tuple[Any, ...] = ()
    group_id: str | None = None
    parent_id: str | None = None
    #: Position in its group (chord header parts are returned in this order); not in the body.
    group_index: int | None = None
    #: Extra fields a backend passes through (Celery's `result_extended`: name, args...).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES
