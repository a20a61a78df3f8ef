"""A task's result as a value: its state, its return value or exception, when it finished.

States are Celery's (`PENDING`, `STARTED`, `RETRY`, `FAILURE`, `SUCCESS`, `REVOKED`, or any
custom state a task reports with `update_state`). Also the errors of the results layer (to be
moved into `hare.errors`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from hare.errors import ConfigurationError, HareError

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
    "MalformedResult",
    "Ref",
    "RemoteError",
    "ResultBackendError",
    "ResultTimeout",
    "ResultsDisabled",
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


# --- errors (belong in hare.errors) ----------------------------------------------------------


class ResultTimeout(HareError, TimeoutError):
    """No ready result arrived within the timeout of `get()` / `wait()`."""

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"no result for task {task_id} within {timeout:g}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_id, self.timeout))


class ResultsDisabled(ConfigurationError):
    """A result was asked for, but the app stores none."""

    def __init__(self, what: str = "results") -> None:
        super().__init__(
            f"{what}: results are off for this app; turn them on with "
            "Hare(..., result_backend='rpc://') (or 'redis://host:6379/0'), "
            "or HARE_RESULT_BACKEND"
        )


class ResultBackendError(HareError):
    """The result backend could not store or read a result (e.g. Redis is unreachable)."""


class MalformedResult(HareError):
    """A stored or replied result that is not a Celery result body."""


class RemoteError(HareError):
    """A task's exception whose class is not available (or not safe) in this process.

    `exc_type` and `exc_module` name the original class, `args` are its arguments as sent.
    """

    def __init__(self, exc_type: str, exc_module: str | None, args: Sequence[Any]) -> None:
        self.exc_type = exc_type
        self.exc_module = exc_module
        super().__init__(*args)

    def __str__(self) -> str:
        name = f"{self.exc_module}.{self.exc_type}" if self.exc_module else self.exc_type
        message = ", ".join(str(arg) for arg in self.args)
        return f"{name}: {message}" if message else name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.exc_type, self.exc_module, self.args))
