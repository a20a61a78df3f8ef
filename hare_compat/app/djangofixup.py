"""What Celery's Django fix-up does, for a project with DJANGO_SETTINGS_MODULE set.

* before the worker imports task modules: `django.setup()`;
* `autodiscover_tasks()` without packages searches the INSTALLED_APPS;
* in the worker, around every task that is not eager: close the database connections that
  are unusable or past CONN_MAX_AGE (`django.db.close_old_connections`), in the thread or
  coroutine that runs the task, as Celery does before and after each task.

Django is imported only here, and only when the project uses it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from hare import signals
from hare.context import current

__all__ = ("connect_worker", "packages", "setup", "uses_django")

_DISPATCH_UID = "hare_compat.app.djangofixup.close_old_connections"


def uses_django() -> bool:
    """Whether this is a Django project (Celery's test): DJANGO_SETTINGS_MODULE is set."""
    return bool(os.environ.get("DJANGO_SETTINGS_MODULE")) and (
        "django" in sys.modules or importlib.util.find_spec("django") is not None
    )


def setup() -> None:
    """`django.setup()`, once."""
    apps = importlib.import_module("django.apps").apps
    if not apps.ready:
        importlib.import_module("django").setup()


def packages() -> list[str]:
    """The packages of INSTALLED_APPS (what `autodiscover_tasks()` searches), after setup."""
    setup()
    apps = importlib.import_module("django.apps").apps
    return [config.name for config in apps.get_app_configs()]


def _close_old_connections(**_: Any) -> None:
    context = current()
    if context is not None and context.is_eager:
        return
    importlib.import_module("django.db").close_old_connections()


def connect_worker() -> None:
    """Close stale database connections around each task the worker runs (idempotent)."""
    for signal in (signals.task_prerun, signals.task_postrun):
        signal.connect(_close_old_connections, dispatch_uid=_DISPATCH_UID)
