"""Celery's `EagerResult`: what `apply()` and `task_always_eager` return, the task having
run here: already evaluated, nothing stored. Its public path is `hare_compat.result`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import hare_compat.states as states
from hare_compat.exceptions import TaskRevokedError
from hare_compat.result_handle import AsyncResult

__all__ = ("EagerResult",)


class EagerResult(AsyncResult):
    """The result of a task run here (`apply()`, `task_always_eager`): already known."""

    def __init__(
        self,
        id: str,
        ret_value: Any,
        state: str,
        traceback: str | None = None,
        name: str | None = None,
    ) -> None:
        self.id = id
        self.app = None
        self.parent = None
        self.task_name = name
        self._backend = None
        self._ignored = False
        self._handle = None
        self._result = ret_value
        self._state = state
        self._traceback = traceback
        self._name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.id, self._result, self._state, self._traceback, self._name)

    def __copy__(self) -> EagerResult:
        return EagerResult(self.id, self._result, self._state, self._traceback, self._name)

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"

    @property
    def state(self) -> str:
        return self._state

    status = state

    @property
    def result(self) -> Any:
        return self._result

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    @property
    def name(self) -> Any:
        return self._name

    @property
    def date_done(self) -> datetime | None:
        return None

    @property
    def children(self) -> list[Any] | None:
        return None

    def ready(self) -> bool:
        return True

    def successful(self) -> bool:
        return self._state == states.SUCCESS

    def failed(self) -> bool:
        return self._state == states.FAILURE

    def exists(self) -> bool:
        return True

    def get(  # type: ignore[override]
        self,
        timeout: float | None = None,
        propagate: bool = True,
        disable_sync_subtasks: bool = True,
        **kwargs: Any,
    ) -> Any:
        """The value; for FAILURE and REVOKED the exception, raised when `propagate`."""
        if self.successful():
            return self.result
        if self._state in states.PROPAGATE_STATES:
            if propagate:
                value = self.result
                raise value if isinstance(value, Exception) else Exception(value)
            return self.result
        return None

    wait = get  # type: ignore[assignment]

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:  # noqa: ASYNC109 - Celery's API
        return self.get(timeout=timeout, propagate=propagate)

    def forget(self) -> None:
        """Nothing is stored for an eager result."""

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        """Mark the result REVOKED: its value becomes `TaskRevokedError` (Celery 5.7)."""
        self._state = states.REVOKED
        self._result = TaskRevokedError("revoked")
        self._traceback = None

    def revoke_by_stamped_headers(
        self,
        headers: Any,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """An eager task already ran: nothing to revoke."""
