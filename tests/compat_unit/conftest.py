"""Isolation for hare_compat unit tests: Celery's process-wide state is restored after each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hare_compat import _state


@pytest.fixture(autouse=True)
def compat_state() -> Iterator[None]:
    """Shared-task callbacks, the default app and the current app, as they were."""
    finalizers = list(_state._on_app_finalizers)
    default, current = _state.default_app, _state._current.app
    try:
        yield
    finally:
        _state._on_app_finalizers[:] = finalizers
        _state.set_default_app(default)
        _state.set_current_app(current)
        for app in _state.active_apps():
            app.close()
