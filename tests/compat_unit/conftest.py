"""Isolation for hare_compat unit tests: Celery's process-wide state is restored after each.

That is hare_compat's, and real Celery's shared-task callbacks too: a test that builds a real
Celery app (to compare with hare_compat) registers its tasks with every Celery app finalized
later in the process, the interop tier's clients included.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hare_compat import _state

try:
    from celery import _state as celery_state
except ImportError:  # Celery comes with the dev extra; without it, nothing registers there
    celery_state = None


@pytest.fixture(autouse=True)
def compat_state() -> Iterator[None]:
    """Shared-task callbacks, the default app and the current app, as they were."""
    finalizers = list(_state._on_app_finalizers)
    celery_finalizers = set(celery_state._on_app_finalizers) if celery_state else set()
    default, current = _state.default_app, _state._current.app
    try:
        yield
    finally:
        _state._on_app_finalizers[:] = finalizers
        if celery_state:
            celery_state._on_app_finalizers.intersection_update(celery_finalizers)
        _state.set_default_app(default)
        _state.set_current_app(current)
        for app in _state.active_apps():
            app.close()
