"""Celery's `celery.app`: the `Celery` app and `shared_task`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from hare_compat import _state
from hare_compat.app.base import Celery
from hare_compat.utils.local import Proxy

if TYPE_CHECKING:
    from hare_compat.app.typed_task import BindingDecorator, FunctionTask

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ("Celery", "app_or_default", "default_app", "shared_task")


@overload
def shared_task(fun: Callable[P, R], /) -> FunctionTask[P, R]: ...


@overload
def shared_task(*, bind: Literal[True], **options: Any) -> BindingDecorator: ...


@overload
def shared_task(
    *, bind: Literal[False] = ..., **options: Any
) -> Callable[[Callable[P, R]], FunctionTask[P, R]]: ...


def shared_task(*args: Any, **kwargs: Any) -> Any:
    """`@shared_task`: a task for every app, existing or created later.

    Returns a proxy that always resolves to the current app's copy of the task, as Celery's.
    """

    def create(**options: Any) -> Callable[[Callable[..., Any]], Any]:
        def decorate(fun: Callable[..., Any]) -> Any:
            name = options.get("name")
            _state.connect_on_app_finalize(lambda app: app._task_from_fun(fun, **options))
            for app in _state.active_apps():
                if app.finalized:
                    app._task_from_fun(fun, **options)

            def task_of_current_app() -> Any:
                app = _state.get_current_app()
                return app.tasks[name or app.gen_task_name(fun.__name__, fun.__module__)]

            return Proxy(task_of_current_app)

        return decorate

    if len(args) == 1 and callable(args[0]):
        return create(**kwargs)(args[0])
    if args:
        raise TypeError("shared_task() takes a function or only keyword arguments")
    return create(**kwargs)


def app_or_default(app: Celery | None = None) -> Celery:
    """`app`, or the current app."""
    return app if app is not None else _state.get_current_app()


def default_app() -> Celery:
    return _state.get_current_app()
