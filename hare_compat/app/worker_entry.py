"""What hare's worker runs for a compat task: the wrapper registered as the hare task
(`make_entry`) and the hare task's `after_signal`, which ends the call once hare has sent
the outcome's signal (see `hare_compat.app.trace` for the order of a traced call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hare.context import current
from hare_compat.app.request import from_hare
from hare_compat.app.steps import adrive, drive
from hare_compat.app.trace import Tracer, is_async_task, take_awaiting

if TYPE_CHECKING:
    from hare_compat.app.task import Task

__all__ = ("after_signal", "make_entry")


def after_signal(task: Task) -> Callable[[str, Any], Any]:
    """The hare task's `after_signal` for `task`: ends the call its wrapper left open.

    Returns the coroutine to await for an async task (hare's worker awaits it on the loop).
    """

    def end(state: str, retval: Any) -> Any:
        tracer = take_awaiting(task)
        if tracer is None:
            return None
        if tracer.is_async:
            return adrive(tracer.end(state))
        return drive(tracer.end(state))

    return end


def make_entry(task: Task) -> Callable[..., Any]:
    """The function hare's worker runs for `task`: a coroutine function when the task is async.

    Outside a worker (no hare context) it is a plain call of the task.
    """
    source = getattr(task, "_decorated_fun", None) or type(task)
    if is_async_task(task):

        async def entry_async(*args: Any, **kwargs: Any) -> Any:
            context = current()
            if context is None:
                return await task(*args, **kwargs)
            tracer = Tracer(task, from_hare(context), args, kwargs, eager=False, is_async=True)
            return await adrive(tracer.steps())

        entry: Callable[..., Any] = entry_async
    else:

        def entry_sync(*args: Any, **kwargs: Any) -> Any:
            context = current()
            if context is None:
                return task(*args, **kwargs)
            tracer = Tracer(task, from_hare(context), args, kwargs, eager=False)
            return drive(tracer.steps())

        entry = entry_sync
    entry.__name__ = getattr(source, "__name__", "task")
    entry.__qualname__ = getattr(source, "__qualname__", entry.__name__)
    entry.__module__ = getattr(source, "__module__", __name__)
    entry.__doc__ = getattr(source, "__doc__", None)
    return entry
