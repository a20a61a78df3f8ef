"""Celery's `AsyncResult`: the state and result of one task, read through the app's results.

Celery's API over hare's `hare.results.handle.AsyncResult` (which reads the app's
`result_backend`): `state`/`status`, `result`/`info`, `traceback`, `ready()`, `get()`,
`await result` (hare's addition), `forget()`, `revoke()`, `iterdeps()`/`collect()`; and
`result_from_tuple`, which turns a stored `as_tuple()` back into handles. Its public path is
`hare_compat.result`.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from typing import Any, NoReturn

import hare_compat.states as states
from hare.errors import NotSupportedError, ResultTimeout
from hare.results.handle import AsyncResult as HareAsyncResult
from hare_compat import _state
from hare_compat.canvas_result import ResultBase
from hare_compat.exceptions import IncompleteStream, TimeoutError
from hare_compat.result_join import assert_will_not_block

__all__ = ("AsyncResult", "result_from_tuple")


class AsyncResult(ResultBase):
    """The state and result of the task with id `id`, read through the app's result backend."""

    TimeoutError = TimeoutError
    #: The app, when this class is an app's (`app.AsyncResult`); else the current app.
    app: Any = None

    def __init__(
        self,
        id: str,
        backend: Any = None,
        task_name: str | None = None,
        app: Any = None,
        parent: Any = None,
    ) -> None:
        if id is None:
            raise ValueError(f"AsyncResult requires valid id, not {type(id)}")
        self.app = app or self.app or _state.get_current_app()
        self.id = id
        self.parent = parent
        self.task_name = task_name
        self._backend = backend
        self._ignored = False
        self._handle: HareAsyncResult | None = None

    @property
    def handle(self) -> HareAsyncResult:
        """hare's handle on this result (made on first use: it needs the finalized app)."""
        if self._handle is None:
            self._handle = HareAsyncResult(self.id, self.app.hare)
        return self._handle

    @property
    def backend(self) -> Any:
        if self._backend is not None:
            return self._backend
        return getattr(self.app, "backend", None) or self.app.hare.results

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def ignored(self) -> bool:
        """If True, task result retrieval is disabled."""
        return self._ignored

    @ignored.setter
    def ignored(self, value: bool) -> None:
        self._ignored = value

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """PENDING (unknown), STARTED, RETRY, FAILURE, SUCCESS, REVOKED, or a custom state."""
        return self.handle.state

    status = state

    @property
    def result(self) -> Any:
        """The return value, the exception (failure), or the meta of a custom state."""
        return self.handle.result

    info = result

    @property
    def traceback(self) -> str | None:
        return self.handle.traceback

    @property
    def date_done(self) -> datetime | None:
        return self.handle.date_done

    def ready(self) -> bool:
        """Whether the task finished: SUCCESS, FAILURE or REVOKED."""
        return self.handle.ready()

    def successful(self) -> bool:
        return self.handle.successful()

    def failed(self) -> bool:
        return self.handle.failed()

    def exists(self) -> bool:
        """Whether the backend holds a result for this id (PENDING says nothing about it)."""
        return self._lookup() is not None

    def _lookup(self) -> Any:
        results = self.app.hare.results
        return None if results is None else results.lookup(self.id)

    def _extra(self, key: str) -> Any:
        found = self._lookup()
        return None if found is None else found.extra.get(key)

    @property
    def name(self) -> Any:
        return self._extra("name") or self.task_name

    @property
    def args(self) -> Any:
        return self._extra("args")

    @property
    def kwargs(self) -> Any:
        return self._extra("kwargs")

    @property
    def worker(self) -> Any:
        return self._extra("worker")

    @property
    def retries(self) -> Any:
        return self._extra("retries")

    @property
    def queue(self) -> Any:
        return self._extra("queue")

    @property
    def children(self) -> list[Any] | None:
        found = self._lookup()
        if found is None or not found.children:
            return None
        return [result_from_tuple(child, self.app) for child in found.children]

    # -- waiting ----------------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[..., Any] | None = None,
        on_message: Callable[..., Any] | None = None,
        on_interval: Callable[..., Any] | None = None,
        disable_sync_subtasks: bool = True,
        EXCEPTION_STATES: frozenset[str] = states.EXCEPTION_STATES,
        PROPAGATE_STATES: frozenset[str] = states.PROPAGATE_STATES,
    ) -> Any:
        """Wait for the task and return its value; re-raise its exception when `propagate`.

        `interval` and `no_ack` are accepted (hare waits on the backend, without polling);
        `TimeoutError` after `timeout` seconds.
        """
        for option, value in (("callback", callback), ("on_message", on_message)):
            if value is not None:
                raise NotSupportedError(f"AsyncResult.get({option}=)", "hare has no such hook")
        if on_interval is not None:
            raise NotSupportedError("AsyncResult.get(on_interval=)", "hare does not poll")
        if self.ignored:
            return None
        if disable_sync_subtasks:
            assert_will_not_block()
        if follow_parents and propagate:
            # Celery's _maybe_reraise_parent_error: re-raise a parent that already failed,
            # without waiting on parents (a step may ignore its result).
            node: Any = self.parent
            while node is not None:
                # A group's parent link (a chord's header) has no single state: skip it.
                if getattr(node, "state", None) in PROPAGATE_STATES:
                    node.get(timeout=timeout, propagate=True, follow_parents=False)
                node = getattr(node, "parent", None)
        try:
            return self.handle.get(timeout=timeout, propagate=propagate)
        except ResultTimeout as exc:
            raise TimeoutError("The operation timed out.") from exc

    wait = get

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:  # noqa: ASYNC109 - Celery's API
        """`get` for async code: waits without blocking the event loop (hare's addition)."""
        if self.ignored:
            return None
        try:
            return await self.handle.aget(timeout=timeout, propagate=propagate)
        except ResultTimeout as exc:
            raise TimeoutError("The operation timed out.") from exc

    def __await__(self) -> Generator[Any, None, Any]:
        return self.aget().__await__()

    def maybe_throw(
        self, propagate: bool = True, callback: Callable[..., Any] | None = None
    ) -> Any:
        value = self.result
        if propagate and self.state in states.PROPAGATE_STATES and isinstance(value, Exception):
            raise value
        if callback is not None:
            callback(self.id, value)
        return value

    maybe_reraise = maybe_throw

    def then(self, callback: Any, on_error: Any = None, weak: bool = False) -> NoReturn:
        raise NotSupportedError("AsyncResult.then", "await the result instead (`await result`)")

    def throw(self, *args: Any, **kwargs: Any) -> None:
        """Raise `exc` (the first argument; else the exception being handled), with
        traceback `tb` if given, unless `propagate=False` (Celery's promise `throw`)."""
        exc = args[0] if args else kwargs.get("exc")
        tb = args[1] if len(args) > 1 else kwargs.get("tb")
        propagate = args[2] if len(args) > 2 else kwargs.get("propagate", True)
        exc = exc if exc is not None else sys.exc_info()[1]
        if propagate and isinstance(exc, BaseException):
            raise exc.with_traceback(tb) if tb is not None else exc

    # -- the tree of results ----------------------------------------------------------------

    def iterdeps(self, intermediate: bool = False) -> Iterator[tuple[Any, Any]]:
        """`(parent, result)` for this result and, breadth first, its children's (those of
        finished tasks); `IncompleteStream` at an unfinished one unless `intermediate`."""
        stack: deque[tuple[Any, Any]] = deque([(None, self)])
        while stack:
            parent, node = stack.popleft()
            yield parent, node
            if node.ready():
                stack.extend((node, child) for child in node.children or [])
            elif not intermediate:
                raise IncompleteStream()

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """`(result, value)` for each result of the tree (`iterdeps`), `get(**kwargs)`."""
        for _, node in self.iterdeps(intermediate=intermediate):
            yield node, node.get(**kwargs)

    def get_leaf(self) -> Any:
        """The value of the last result of the tree (`iterdeps`)."""
        value = None
        for _, node in self.iterdeps():
            value = node.get()
        return value

    def build_graph(self, intermediate: bool = False, formatter: Any = None) -> NoReturn:
        raise NotSupportedError(
            "AsyncResult.build_graph", "walk result.iterdeps() instead (no celery.utils.graph)"
        )

    # -- acting on the task -------------------------------------------------------------------

    def forget(self) -> None:
        """Forget the result of this task and its parents."""
        if self.parent is not None:
            self.parent.forget()
        self.handle.forget()

    def revoke_by_stamped_headers(
        self,
        headers: Any,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Revoke the tasks stamped with `headers` (see `app.control`), as Celery's does."""
        if connection is not None:
            raise NotSupportedError(
                "revoke_by_stamped_headers(connection=)", "hare uses the app's connection"
            )
        self.app.control.revoke_by_stamped_headers(
            headers, terminate=terminate, signal=signal, reply=wait, timeout=timeout
        )

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Ask every worker to discard this task (and, with `terminate`, stop it if running).

        `signal` None is SIGTERM; with `wait`, replies are awaited `timeout` seconds (None:
        one second), as in Celery (which returns nothing either way)."""
        if connection is not None:
            raise NotSupportedError("revoke(connection=)", "hare uses the app's connection")
        self.app.control.revoke(
            self.id, terminate=terminate, signal=signal, reply=wait, timeout=timeout
        )

    # -- identity ---------------------------------------------------------------------------

    def as_tuple(self) -> tuple[Any, ...]:
        parent = self.parent
        return (self.id, parent and parent.as_tuple()), None

    def __json__(self) -> tuple[Any, ...]:
        """A task returning a result handle stores its tuple, as Celery's backends do."""
        return self.as_tuple()

    def as_list(self) -> list[str]:
        """This task's id and its parents'."""
        ids = [self.id]
        if self.parent is not None:
            ids.extend(self.parent.as_list())
        return ids

    def __str__(self) -> str:
        return str(self.id)

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __copy__(self) -> AsyncResult:
        return type(self)(self.id, self._backend, self.task_name, self.app, self.parent)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.id, None, self.task_name, None, self.parent)


def result_from_tuple(r: Any, app: Any = None) -> Any:
    """A result from its tuple form `((id, parent), children)` (how children are stored)."""
    if isinstance(r, ResultBase):
        return r
    app = app if app is not None else _state.get_current_app()
    res, nodes = r
    task_id, parent = res if isinstance(res, list | tuple) else (res, None)
    if parent:
        parent = result_from_tuple(parent, app)
    if nodes is not None:
        return app.GroupResult(
            task_id, [result_from_tuple(child, app) for child in nodes], parent=parent
        )
    return AsyncResult(task_id, app=app, parent=parent)
