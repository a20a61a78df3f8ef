"""Celery's classes bound to an app: `app.AsyncResult`, `app.GroupResult`, `app.ResultSet`,
each a subclass whose app is this one (Celery's `subclass_with_self`).

A mixin of `hare_compat.app.base.Celery`, kept apart because it is one concept: classes that
carry their app, so that `app.AsyncResult(task_id)` reads through this app's results.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, cast

from hare_compat.app import loader
from hare_compat.result import AsyncResult, GroupResult, ResultSet

__all__ = ("BoundClasses",)


class BoundClasses:
    """`subclass_with_self` and the result classes of a Celery app."""

    def subclass_with_self(
        self,
        Class: Any,
        name: str | None = None,
        attribute: str = "app",
        reverse: str | None = None,
        keep_reduce: bool = False,
        **kw: Any,
    ) -> type:
        """A subclass of `Class` whose `attribute` is this app (`Class` or its import path).

        Unless `keep_reduce`, its instances pickle as instances of `Class` (Celery's pickle
        them through the current app's `reverse` attribute): the app is not pickled."""
        base: type = loader.symbol_by_name(Class) if isinstance(Class, str) else Class
        attrs: dict[str, Any] = {
            attribute: self,
            "__module__": base.__module__,
            "__doc__": base.__doc__,
            **kw,
        }
        if not keep_reduce:

            def __reduce__(obj: Any) -> Any:
                reduced = cast(Any, base).__reduce__(obj)
                if isinstance(reduced, tuple) and reduced and reduced[0] is type(obj):
                    return (base, *reduced[1:])
                return reduced

            attrs["__reduce__"] = __reduce__
        return type(name or base.__name__, (base,), attrs)

    @cached_property
    def AsyncResult(self) -> type[AsyncResult]:
        """`app.AsyncResult(id)`: a handle on the result of a task (the class, bound to
        this app, as Celery's)."""
        bound: type[AsyncResult] = self.subclass_with_self(AsyncResult)
        return bound

    @cached_property
    def GroupResult(self) -> type[GroupResult]:
        """`app.GroupResult(id, results)`: a handle on the results of a group (bound)."""
        bound: type[GroupResult] = self.subclass_with_self(GroupResult, attribute="_app")
        return bound

    @cached_property
    def ResultSet(self) -> type[ResultSet]:
        """`app.ResultSet(results)`: a handle on several results (bound to this app)."""
        bound: type[ResultSet] = self.subclass_with_self(ResultSet, attribute="_app")
        return bound
