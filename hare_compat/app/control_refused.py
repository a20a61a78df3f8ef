"""The `app.control` commands only Celery workers obey: each raises `NotSupportedError`
naming the command and why hare workers would not obey it (`app.control.broadcast(command,
...)` still reaches Celery workers).

A mixin of `hare_compat.app.control.Control`, kept apart because it is one concept: what a
hare fleet refuses to be told, with Celery's signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from hare.errors import NotSupportedError

__all__ = ("RefusedCommands",)

#: Commands only Celery workers obey -> why hare's do not.
_NOT_OBEYED = {
    "add_consumer": "hare workers consume the queues they were started with (-Q)",
    "cancel_consumer": "hare workers consume the queues they were started with (-Q)",
    "autoscale": "hare workers do not autoscale",
    "pool_grow": "a hare worker's pool keeps the size -c gave it",
    "pool_shrink": "a hare worker's pool keeps the size -c gave it",
    "pool_restart": "hare workers do not restart their pool: restart the worker (SIGTERM "
    "drains it)",
    "enable_events": "hare sends no Celery events",
    "disable_events": "hare sends no Celery events",
    "heartbeat": "hare sends no Celery events",
    "rate_limit": "hare workers take rate limits from the tasks' rate_limit",
    "time_limit": "hare workers take time limits from the tasks' time_limit/soft_time_limit",
    "shutdown": "stop hare workers with SIGTERM (they drain first)",
    "election": "hare has no worker elections",
}


def _refuse(command: str) -> NoReturn:
    raise NotSupportedError(
        f"app.control.{command}()",
        f"{_NOT_OBEYED[command]}; app.control.broadcast({command!r}, ...) still reaches "
        "Celery workers",
    )


class RefusedCommands:
    """`rate_limit`, `time_limit`, `add_consumer`, `shutdown`, `pool_grow`... of `app.control`."""

    def election(self, id: str, topic: str, action: Any = None, connection: Any = None) -> NoReturn:
        _refuse("election")

    def rate_limit(
        self,
        task_name: str,
        rate_limit: Any,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> NoReturn:
        _refuse("rate_limit")

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> NoReturn:
        _refuse("time_limit")

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        options: Any = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> NoReturn:
        _refuse("add_consumer")

    def cancel_consumer(
        self, queue: str, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> NoReturn:
        _refuse("cancel_consumer")

    def enable_events(self, destination: Sequence[str] | None = None, **kwargs: Any) -> NoReturn:
        _refuse("enable_events")

    def disable_events(self, destination: Sequence[str] | None = None, **kwargs: Any) -> NoReturn:
        _refuse("disable_events")

    def heartbeat(self, destination: Sequence[str] | None = None, **kwargs: Any) -> NoReturn:
        _refuse("heartbeat")

    def pool_grow(
        self, n: int = 1, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> NoReturn:
        _refuse("pool_grow")

    def pool_shrink(
        self, n: int = 1, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> NoReturn:
        _refuse("pool_shrink")

    def pool_restart(
        self,
        modules: Any = None,
        reload: bool = False,
        reloader: Any = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> NoReturn:
        _refuse("pool_restart")

    def autoscale(
        self, max: int, min: int, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> NoReturn:
        _refuse("autoscale")

    def shutdown(self, destination: Sequence[str] | None = None, **kwargs: Any) -> NoReturn:
        _refuse("shutdown")
