"""The task registry (`app.tasks`) and the promise behind a lazily created task.

`@app.task` on an app that is not finalized yet returns a proxy to a `Promise`, as Celery's
`PromiseProxy`: the task is created on first use of the proxy, or when the app finalizes,
whichever comes first, so it sees the app's final configuration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from hare_compat.exceptions import NotRegistered

__all__ = ("Promise", "TaskRegistry")

_UNSET = object()


class Promise:
    """A value computed once, on first `evaluate()` (thread-safe)."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self._compute = compute
        self._value: Any = _UNSET
        self._lock = threading.RLock()

    def evaluate(self) -> Any:
        if self._value is _UNSET:
            with self._lock:
                if self._value is _UNSET:
                    self._value = self._compute()
        return self._value


class TaskRegistry(dict[str, Any]):
    """Tasks by name; a missing name raises `NotRegistered` (a `KeyError`), as Celery's."""

    NotRegistered = NotRegistered

    def __missing__(self, key: str) -> Any:
        raise NotRegistered(key)

    def register(self, task: Any) -> None:
        """Register a task instance (or class, instantiated) under its name."""
        instance = task() if isinstance(task, type) else task
        self[instance.name] = instance

    def unregister(self, name: Any) -> None:
        """Forget a task (by name or instance)."""
        key = name if isinstance(name, str) else name.name
        try:
            del self[key]
        except KeyError:
            raise NotRegistered(key) from None

    def regular(self) -> dict[str, Any]:
        return dict(self)

    def periodic(self) -> dict[str, Any]:
        return {}
