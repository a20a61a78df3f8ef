"""The app a signature sends through: what it must offer (`CanvasApp`), and where a signature
with no app of its own finds one (`set_default_app_resolver`; by default the current app).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from hare.canvas import continuation as core
from hare.core.calls import Env
from hare_compat import _state

__all__ = ("CanvasApp", "fallback_app", "set_default_app_resolver")


class CanvasApp(Protocol):
    """What a signature needs from the app it is sent through."""

    tasks: Mapping[str, Any]

    def canvas_env(self) -> Env:
        """New ids, the clock, `origin`, the serializer, the reply queue (Celery's
        `thread_oid`) and the running task's message (`hare.context.current()`), if any."""
        ...

    def publish_plan(self, plan: core.Plan) -> None:
        """Record `plan.chord_headers` and `plan.chord_sizes` in the result backend, then
        publish `plan.publish` in order (a `None` queue routed by task name, as `send_task`),
        confirmed."""
        ...

    def AsyncResult(self, task_id: str) -> Any: ...

    def GroupResult(self, group_id: str, results: list[Any]) -> Any: ...


def _current_app() -> CanvasApp:
    """Celery's `current_app`: the app made current last, else a default one."""
    # (cast: CanvasApp declares `tasks` settable; the app's registry is a read-only property.)
    return cast(CanvasApp, _state.get_current_app())


_resolve_default: Callable[[], CanvasApp] = _current_app


def set_default_app_resolver(resolver: Callable[[], CanvasApp]) -> None:
    """Where a signature with no app of its own finds one (Celery's `current_app`)."""
    global _resolve_default
    _resolve_default = resolver


def fallback_app() -> CanvasApp:
    """The app of a signature that has none of its own."""
    return _resolve_default()
