"""`ResultSet` and `GroupResult`: the results of several tasks, in order, as Celery's.

Built on the app's per-task result handles (anything with `id`, `get(timeout=,
propagate=)`, `ready()`, `successful()`, `failed()`, `forget()`, such as `AsyncResult`).
hare's result backends store task results only, so a group cannot be `save()`d and
`restore()`d by its id: keep the handle (it pickles) or its `as_tuple()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from hare.canvas.continuation import GroupRef, Ref
from hare.errors import NotSupportedError
from hare_compat import _state
from hare_compat.result_join import E_WOULDBLOCK as E_WOULDBLOCK
from hare_compat.result_join import allow_join_result as allow_join_result
from hare_compat.result_join import assert_will_not_block as assert_will_not_block
from hare_compat.result_join import denied_join_result as denied_join_result

if TYPE_CHECKING:
    from hare_compat.canvas_app import CanvasApp

__all__ = (
    "GroupResult",
    "ResultBase",
    "ResultSet",
    "allow_join_result",
    "assert_will_not_block",
    "denied_join_result",
    "result_of",
)


class ResultBase:
    """Base class for results."""

    #: The parent result, when part of a chain.
    parent: Any = None


class ResultSet(ResultBase):
    """A collection of results (Celery's `celery.result.ResultSet`)."""

    _app: Any = None

    def __init__(
        self, results: list[Any], app: Any = None, ready_barrier: Any = None, **kwargs: Any
    ) -> None:
        if kwargs.keys() - {"parent"}:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        if app is not None:
            self._app = app
        self.results = results if isinstance(results, list) else list(results or ())

    @property
    def app(self) -> Any:
        if self._app is None:
            self._app = self.results[0].app if self.results else _state.get_current_app()
        return self._app

    @app.setter
    def app(self, app: Any) -> None:
        self._app = app

    @property
    def backend(self) -> Any:
        return self.app.backend if self.app is not None else self.results[0].backend

    @property
    def supports_native_join(self) -> bool:
        return False  # join() waits on each result's own handle

    # -- membership -----------------------------------------------------------------------------

    def add(self, result: Any) -> None:
        """Add a result, unless it is a member already."""
        if result not in self.results:
            self.results.append(result)

    def remove(self, result: Any) -> None:
        """Remove a member (`KeyError` if it is none); a task id names one."""
        if isinstance(result, str):
            result = self.app.AsyncResult(result)
        try:
            self.results.remove(result)
        except ValueError:
            raise KeyError(result) from None

    def discard(self, result: Any) -> None:
        """Remove a member, if it is one."""
        try:
            self.remove(result)
        except KeyError:
            pass

    def update(self, results: Iterable[Any]) -> None:
        """Add the results that are not members yet."""
        self.results.extend(r for r in results if r not in self.results)

    def clear(self) -> None:
        self.results[:] = []

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as Celery's: a mutable set of results

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.results,)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(str(r.id) for r in self.results)}]>"

    # -- state ----------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether every task has finished (succeeded, failed or was revoked)."""
        return all(result.ready() for result in self.results)

    def successful(self) -> bool:
        return all(result.successful() for result in self.results)

    def failed(self) -> bool:
        return any(result.failed() for result in self.results)

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        """How many tasks succeeded."""
        return sum(int(result.successful()) for result in self.results)

    def maybe_throw(
        self, callback: Callable[..., Any] | None = None, propagate: bool = True
    ) -> None:
        for result in self.results:
            result.maybe_throw(callback=callback, propagate=propagate)

    maybe_reraise = maybe_throw

    # -- acting on the tasks --------------------------------------------------------------------

    def forget(self) -> None:
        for result in self.results:
            result.forget()

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Ask every worker to discard these tasks (with `terminate`, stop the running ones)."""
        if connection is not None:
            raise NotSupportedError("revoke(connection=)", "hare uses the app's connection")
        self.app.control.revoke(
            [r.id for r in self.results],
            terminate=terminate,
            signal=signal,
            reply=wait,
            timeout=timeout,
        )

    def then(self, callback: Any, on_error: Any = None, weak: bool = False) -> NoReturn:
        raise NotSupportedError(f"{type(self).__name__}.then", "await each result instead")

    # -- waiting --------------------------------------------------------------------------------

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], Any] | None = None,
        no_ack: bool = True,
        on_message: Callable[..., Any] | None = None,
        disable_sync_subtasks: bool = True,
        on_interval: Callable[..., Any] | None = None,
    ) -> list[Any]:
        """Each task's value, in order; `timeout` (seconds) bounds the whole wait.

        With `propagate` (the default) the first failure's exception is raised; with a
        `callback`, it is called with `(task_id, value)` for each task and `[]` is returned.
        `interval` and `no_ack` are accepted (hare waits without polling)."""
        if on_message is not None:
            raise NotSupportedError(f"{type(self).__name__}.get(on_message=)", "no such hook")
        if disable_sync_subtasks:
            assert_will_not_block()
        values = []
        for result, value in self._values(timeout, propagate, on_interval, disable_sync_subtasks):
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    get = join

    def join_native(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], Any] | None = None,
        no_ack: bool = True,
        on_message: Callable[..., Any] | None = None,
        on_interval: Callable[..., Any] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any] | None:
        """`join` (hare has one way to wait); None with a `callback`, as Celery's."""
        values = self.join(
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            callback=callback,
            no_ack=no_ack,
            on_message=on_message,
            disable_sync_subtasks=disable_sync_subtasks,
            on_interval=on_interval,
        )
        return None if callback is not None else values

    def iter_native(
        self,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Callable[..., Any] | None = None,
        on_interval: Callable[..., Any] | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """`(task_id, meta)` for each task once it finished, in order; `meta` has Celery's
        `status`, `result`, `traceback` and `task_id`."""
        if on_message is not None:
            raise NotSupportedError(f"{type(self).__name__}.iter_native(on_message=)", "no hook")
        for result, _ in self._values(timeout, False, on_interval, False):
            meta = {
                "task_id": result.id,
                "status": result.state,
                "result": result.result,
                "traceback": result.traceback,
                "children": result.children,
            }
            yield result.id, meta

    def _values(
        self,
        timeout: float | None,
        propagate: bool,
        on_interval: Callable[..., Any] | None,
        disable_sync_subtasks: bool,
    ) -> Iterator[tuple[Any, Any]]:
        deadline = None if timeout is None else time.monotonic() + timeout
        for result in self.results:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            options: dict[str, Any] = {"timeout": left, "propagate": propagate}
            if on_interval is not None:
                options["on_interval"] = on_interval
            if not disable_sync_subtasks:
                options["disable_sync_subtasks"] = False
            yield result, result.get(**options)


class GroupResult(ResultSet):
    """The results of the tasks of group `id` (Celery's `celery.result.GroupResult`)."""

    def __init__(
        self,
        id: str | None = None,
        results: list[Any] | None = None,
        parent: Any = None,
        **kwargs: Any,
    ) -> None:
        self.id = id
        self.parent = parent
        super().__init__(results or [], **kwargs)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(str(r.id) for r in self.results)}]>"

    def __str__(self) -> str:
        return str(self.id)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self.id)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return (other.id, other.results, other.parent) == (self.id, self.results, self.parent)
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __bool__(self) -> bool:
        return bool(self.id or self.results)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.id, self.results)

    @property
    def children(self) -> list[Any]:
        return self.results

    def as_tuple(self) -> tuple[Any, ...]:
        parent = self.parent
        return (self.id, parent and parent.as_tuple()), [r.as_tuple() for r in self.results]

    def __json__(self) -> tuple[Any, ...]:
        """A task returning a group's handle stores its tuple, as Celery's backends do."""
        return self.as_tuple()

    def save(self, backend: Any = None) -> NoReturn:
        raise NotSupportedError(
            "GroupResult.save", "hare's result backends store task results only; keep the handle"
        )

    def delete(self, backend: Any = None) -> NoReturn:
        raise NotSupportedError(
            "GroupResult.delete", "hare's result backends store task results only"
        )

    @classmethod
    def restore(cls, id: str, backend: Any = None, app: Any = None) -> NoReturn:
        raise NotSupportedError(
            "GroupResult.restore",
            "hare's result backends store task results only; pickle the GroupResult or keep "
            "its as_tuple() (result_from_tuple)",
        )


def result_of(app: CanvasApp, ref: Ref | None, parents: Iterable[tuple[str, Ref]] = ()) -> Any:
    """The app's result handle for what `hare.canvas.apply` reported, each handle's
    `parent` set from `parents` (`hare.canvas.Plan.parents`) as Celery links them."""
    links = dict(parents)
    made: dict[str, Any] = {}

    def handle(ref: Ref) -> Any:
        key = ref if isinstance(ref, str) else ref.id
        if key in made:
            return made[key]
        if isinstance(ref, GroupRef):
            made[key] = app.GroupResult(ref.id, [handle(r) for r in ref.results])
        else:
            made[key] = app.AsyncResult(ref)
        if key in links:
            made[key].parent = handle(links[key])
        return made[key]

    return None if ref is None else handle(ref)
