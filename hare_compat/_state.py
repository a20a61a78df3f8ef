"""Process-wide state, as Celery's `celery._state`: the current app and the shared tasks.

* `current_app`: the app made current last (every `Celery()` is, unless
  `set_as_current=False`), else the default app, else a default app created on first use;
* `connect_on_app_finalize(callback)`: `callback(app)` runs for every app that finalizes,
  including apps created later. `@shared_task` registers its task this way;
* `current_task`: the compat task running in this thread or coroutine (the innermost of the
  request stack the task runner keeps here), else `None`.

This module sits below the app: `hare_compat.app.base` registers how the default app is made
(`set_default_app_factory`) when it is imported, which `import hare_compat` always does.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from hare_compat._proxy import Proxy

if TYPE_CHECKING:
    from hare_compat.app.base import Celery
    from hare_compat.app.request import Context

__all__ = (
    "connect_on_app_finalize",
    "current_app",
    "current_task",
    "get_current_app",
    "get_current_task",
    "set_default_app",
)

AppCallback = Callable[["Celery"], Any]

#: The app `current_app` falls back on.
default_app: Celery | None = None
#: Makes the default app when `current_app` is used before any app was created.
_default_app_factory: Callable[[], Celery] | None = None
_apps: weakref.WeakSet[Celery] = weakref.WeakSet()
_on_app_finalizers: list[AppCallback] = []
_lock = threading.RLock()


class _Current(threading.local):
    app: Celery | None = None


_current = _Current()


def connect_on_app_finalize(callback: AppCallback) -> AppCallback:
    """Call `callback(app)` for every app when it finalizes (and now for finalized ones)."""
    with _lock:
        _on_app_finalizers.append(callback)
    return callback


def announce_app_finalized(app: Celery) -> None:
    """Run every finalize callback for `app` (called by `Celery.finalize`)."""
    with _lock:
        callbacks = list(_on_app_finalizers)
    for callback in callbacks:
        callback(app)


def register_app(app: Celery) -> None:
    _apps.add(app)


def deregister_app(app: Celery) -> None:
    _apps.discard(app)


def active_apps() -> list[Celery]:
    return list(_apps)


def set_default_app(app: Celery | None) -> None:
    global default_app
    default_app = app


def set_default_app_factory(factory: Callable[[], Celery]) -> None:
    """How `get_current_app` makes a default app when none was created (set by
    `hare_compat.app.base`)."""
    global _default_app_factory
    _default_app_factory = factory


def set_current_app(app: Celery | None) -> None:
    _current.app = app


def get_current_app() -> Celery:
    """The current app; a default one (configured by nothing) when no app was created."""
    app = _current.app or default_app
    if app is None:
        with _lock:
            if default_app is None:
                if _default_app_factory is None:
                    raise RuntimeError("no app: import hare_compat (it registers the default app)")
                set_default_app(_default_app_factory())
            app = default_app
    assert app is not None
    return app


def get_current_task() -> Any:
    """The compat task running in this thread or coroutine, or `None`."""
    top = top_task()
    return None if top is None else top[0]


# -- the request stack ----------------------------------------------------------------------
# Celery keeps each task's requests on a thread-local stack. Async tasks share one thread, so
# here the stack lives in a `ContextVar`: every asyncio task and every pool thread sees its own.

_requests: ContextVar[tuple[tuple[object, Context], ...]] = ContextVar(
    "hare_compat_requests", default=()
)


def push_request(task: object, request: Context) -> None:
    """Make `request` the current request of `task` (until `pop_request`)."""
    _requests.set((*_requests.get(), (task, request)))


def pop_request(task: object) -> None:
    """Drop the most recent request of `task`."""
    stack = _requests.get()
    for index in range(len(stack) - 1, -1, -1):
        if stack[index][0] is task:
            _requests.set(stack[:index] + stack[index + 1 :])
            return


def current_request(task: object) -> Context | None:
    """The current request of `task` in this thread or asyncio task, if it runs."""
    for owner, request in reversed(_requests.get()):
        if owner is task:
            return request
    return None


def top_task() -> tuple[object, Context] | None:
    """The task (and its request) running innermost here: Celery's `current_task`."""
    stack = _requests.get()
    return stack[-1] if stack else None


#: Proxies to the current app and the running task, as Celery's.
current_app: Celery = Proxy(get_current_app)  # type: ignore[assignment]
current_task: Any = Proxy(get_current_task)
