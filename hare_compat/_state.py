"""Process-wide state, as Celery's `celery._state`: the current app and the shared tasks.

* `current_app`: the app made current last (every `Celery()` is, unless
  `set_as_current=False`), else the default app, else a default app created on first use;
* `connect_on_app_finalize(callback)`: `callback(app)` runs for every app that finalizes,
  including apps created later. `@shared_task` registers its task this way;
* `current_task`: the compat task running in this thread or coroutine (from the request
  stack of `hare_compat.app.request`, which the task runner keeps), else `None`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hare_compat.utils.local import Proxy

if TYPE_CHECKING:
    from hare_compat.app.base import Celery

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


def set_current_app(app: Celery | None) -> None:
    _current.app = app


def get_current_app() -> Celery:
    """The current app; a default one (configured by nothing) when no app was created."""
    app = _current.app or default_app
    if app is None:
        with _lock:
            if default_app is None:
                from hare_compat.app.base import Celery

                set_default_app(Celery("default", set_as_current=False))
            app = default_app
    assert app is not None
    return app


def get_current_task() -> Any:
    """The compat task running in this thread or coroutine, or `None`."""
    from hare_compat.app.request import top_task

    top = top_task()
    return None if top is None else top[0]


#: Proxies to the current app and the running task, as Celery's.
current_app: Celery = Proxy(get_current_app)  # type: ignore[assignment]
current_task: Any = Proxy(get_current_task)
