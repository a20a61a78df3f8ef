"""Celery's built-in tasks that a worker serves for its canvas: `celery.accumulate` (for
`Task.replace` with a group), `celery.map` and `celery.starmap` (`task.map(it)`,
`task.starmap(it)`: one message that calls the task on each item, in the worker)."""

from __future__ import annotations

from typing import Any

from hare_compat.app.factory import task_from_function
from hare_compat.app.replacing import ACCUMULATE, accumulate
from hare_compat.canvas_signature import signature

__all__ = ("add_builtin_tasks",)


def add_builtin_tasks(app: Any) -> None:
    """Register the built-ins `app` does not have yet (Celery's `connect_on_app_finalize`
    ones, those hare serves)."""

    def xmap(task: Any, it: Any) -> list[Any]:
        """Celery's `celery.map`: the task called on each item."""
        run = signature(task, app=app).type
        return [run(item) for item in it]

    def xstarmap(task: Any, it: Any) -> list[Any]:
        """Celery's `celery.starmap`: the task called with each item as its arguments."""
        run = signature(task, app=app).type
        return [run(*item) for item in it]

    for name, fn in ((ACCUMULATE, accumulate), ("celery.map", xmap), ("celery.starmap", xstarmap)):
        if name not in app._tasks:
            task_from_function(app, fn, name=name)
