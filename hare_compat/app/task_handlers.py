"""The handlers a task's subclass overrides: `before_start`, `on_success`, `on_retry`,
`on_failure`, `after_return`, as Celery's.

A mixin of `hare_compat.app.task.Task`, kept apart because it is one concept: the hooks
`hare_compat.app.trace` calls around a run (each does nothing here).
"""

from __future__ import annotations

from typing import Any

__all__ = ("TaskHandlers",)


class TaskHandlers:
    """The handlers of a task (override them in a subclass)."""

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> Any:
        """Called before the task starts (on the worker, after `task_prerun`).

        Handlers may be `async def` in an async task: they are awaited."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> Any:
        """Called when the task returned."""

    def on_retry(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> Any:
        """Called when the task is to be retried."""

    def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> Any:
        """Called when the task failed."""

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> Any:
        """Called after the task returned or failed (not after a retry)."""
