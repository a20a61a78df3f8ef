"""`AsyncResult`: a handle on one task's result, by id, as Celery's `AsyncResult` is.

    handle = AsyncResult(sent.id, app)
    handle.get(timeout=10)            # sync: blocks this thread (not the event loop's)
    await handle                      # async: the value, or the task's exception raised
    await handle.aget(timeout=10, propagate=False)

A ready result is kept in the handle: asking again does no I/O. With rpc:// results are
single-consumer: only the process that sent the task receives its result (see
`hare.results.backends.rpc`).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from hare.errors import ResultsDisabled
from hare.results.state import (
    FAILURE,
    PENDING,
    PROPAGATE_STATES,
    SUCCESS,
    TaskResult,
)

if TYPE_CHECKING:
    from hare.results.store import Results

__all__ = ("AsyncResult", "ResultSource")


class ResultSource(Protocol):
    """What a result handle needs of its app: where results are stored, if anywhere."""

    @property
    def results(self) -> Results | None: ...


class AsyncResult:
    """The result of the task with id `id`, read through `app`'s result backend."""

    def __init__(self, id: str, app: ResultSource) -> None:
        if not isinstance(id, str) or not id:
            raise ValueError(f"a task id is a non-empty string, not {id!r}")
        self.id = id
        self.app = app
        self._ready: TaskResult | None = None

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def _results(self, what: str) -> Results:
        results = self.app.results
        if results is None:
            raise ResultsDisabled(f"AsyncResult.{what}")
        return results

    def _keep(self, result: TaskResult | None) -> TaskResult:
        if result is None:
            return TaskResult(task_id=self.id, state=PENDING)
        if result.ready:
            self._ready = result
        return result

    def _current(self, what: str) -> TaskResult:
        if self._ready is not None:
            return self._ready
        return self._keep(self._results(what).lookup(self.id))

    # -- state, read on each access until ready -----------------------------------------

    @property
    def state(self) -> str:
        """The task's state: `PENDING` when unknown (not sent, not started, or forgotten)."""
        return self._current("state").state

    @property
    def status(self) -> str:
        return self._current("status").state

    @property
    def result(self) -> Any:
        """The return value, the exception (failure), the meta (custom state), or None."""
        return self._current("result").value

    @property
    def info(self) -> Any:
        return self._current("info").value

    @property
    def traceback(self) -> str | None:
        return self._current("traceback").traceback

    @property
    def date_done(self) -> datetime | None:
        return self._current("date_done").date_done

    def ready(self) -> bool:
        """Whether the task finished: SUCCESS, FAILURE or REVOKED."""
        return self._current("ready()").ready

    def successful(self) -> bool:
        return self._current("successful()").state == SUCCESS

    def failed(self) -> bool:
        return self._current("failed()").state == FAILURE

    async def arefresh(self) -> TaskResult:
        """The task's current result, read without blocking the loop (PENDING if unknown)."""
        if self._ready is not None:
            return self._ready
        return self._keep(await self._results("arefresh()").alookup(self.id))

    # -- waiting ----------------------------------------------------------------------------

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """Wait for the task to finish and return its value (sync code only).

        Raises the task's exception for FAILURE and REVOKED when `propagate`, else returns it;
        `ResultTimeout` after `timeout` seconds.
        """
        if self._ready is None:
            self._keep(self._results("get()").wait_ready(self.id, timeout))
        return self._outcome(propagate)

    async def aget(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - Celery's API
        propagate: bool = True,
    ) -> Any:
        """`get` for async code: waits without blocking the event loop."""
        if self._ready is None:
            self._keep(await self._results("aget()").await_ready(self.id, timeout))
        return self._outcome(propagate)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.aget().__await__()

    def _outcome(self, propagate: bool) -> Any:
        assert self._ready is not None
        value = self._ready.value
        if propagate and self._ready.state in PROPAGATE_STATES and isinstance(value, BaseException):
            raise value.with_traceback(None)
        return value

    def forget(self) -> None:
        """Drop the stored result (Redis: delete it; rpc: this process's copy)."""
        self._results("forget()").forget(self.id)
        self._ready = None

    async def aforget(self) -> None:
        await self._results("aforget()").aforget(self.id)
        self._ready = None
