"""What a type checker sees of a task made from a function: its parameters and its result.

`@app.task` and `@shared_task` return a `Task` at run time, as Celery's do. For mypy and
pyright they return a `FunctionTask[P, R]`: the same class, with `delay`, `adelay`, `run` and
calling the task itself typed by the function's signature, so `add.delay("x", 1)` on
`def add(x: int, y: int)` is an error before it is a failed task. A bound task
(`bind=True`) is typed without its first parameter, the task itself. Class-based tasks and
`apply_async(args, kwargs)` stay untyped, as Celery's are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from hare_compat.app.task import Task

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ("FunctionTask",)  # and, for type checkers only, BindingDecorator

if TYPE_CHECKING:
    from collections.abc import Callable

    from hare_compat.result import AsyncResult

    class FunctionTask(Task, Generic[P, R]):
        """A `Task` typed by the function it runs (only the type checker sees this class)."""

        def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

        def run(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

        def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult: ...

        async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult: ...

    class BindingDecorator(Protocol):
        """`@app.task(bind=True)`: the task is typed without the function's first parameter.

        A function whose first parameter mypy cannot split off (e.g. `def f(self, *args,
        key)`, where `self` could be passed by name) gets an untyped task instead of an error.
        """

        @overload
        def __call__(self, fun: Callable[Concatenate[Any, P], R], /) -> FunctionTask[P, R]: ...

        @overload
        def __call__(self, fun: Callable[..., R], /) -> FunctionTask[..., R]: ...  # type: ignore[overload-cannot-match]

else:
    FunctionTask = Task
