"""Test apps, as `celery.contrib.testing.app`: `TestApp` and `setup_default_app`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

from hare.errors import NotSupportedError
from hare_compat import _state
from hare_compat.app.base import Celery

__all__ = ("DEFAULT_TEST_CONFIG", "TestApp", "setup_default_app")

#: The configuration a test app starts from (Celery's, with hare's in-memory broker).
DEFAULT_TEST_CONFIG: Mapping[str, Any] = {
    "worker_hijack_root_logger": False,
    "worker_log_color": False,
    "accept_content": {"json"},
    "enable_utc": True,
    "timezone": "UTC",
    "broker_url": "memory://",
    "result_backend": "memory://",
    "broker_heartbeat": 0,
}


def TestApp(
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    enable_logging: bool = False,
    set_as_current: bool = False,
    backend: str | None = None,
    broker: str | None = None,
    **kwargs: Any,
) -> Celery:
    """An app for tests: `DEFAULT_TEST_CONFIG` under `config`. `enable_logging` is accepted
    for Celery's signature: hare never takes over logging."""
    from hare_compat.contrib.testing import tasks  # noqa: F401  (registers celery.ping)

    del enable_logging
    settings = dict(deepcopy(dict(DEFAULT_TEST_CONFIG)), **(config or {}))
    if broker is not None:
        settings.pop("broker_url", None)
    if backend is not None:
        settings.pop("result_backend", None)
    app = Celery(
        name or "celery.tests",
        set_as_current=set_as_current,
        broker=broker,
        backend=backend,
        **kwargs,
    )
    app.conf.update(settings)
    return app


@contextmanager
def setup_default_app(app: Celery, use_trap: bool = False) -> Iterator[None]:
    """Make `app` the current and default app for the block, then restore the previous ones.

    `use_trap` (Celery raises when code falls back to the current app) is not supported."""
    if use_trap:
        raise NotSupportedError("use_celery_app_trap", "hare_compat has no app trap")
    previous_current = _state.get_current_app()
    previous_default = _state.default_app
    try:
        yield
    finally:
        _state.set_current_app(previous_current)
        _state.set_default_app(previous_default)
