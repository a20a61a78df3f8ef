"""hare_compat: Celery's API over hare, so a Celery project migrates by changing imports.

Replace `celery` with `hare_compat` in the import lines (`from hare_compat import Celery,
shared_task`, `from hare_compat.schedules import crontab`, ...) and start
`hare worker proj.celery:app` instead of `celery -A proj worker`. What maps onto what, and
what behaves differently, is in docs/migrating-from-celery.md.
"""

from __future__ import annotations

from typing import Any, cast

from hare_compat._state import current_app as current_app
from hare_compat._state import current_task as current_task
from hare_compat._state import get_current_app
from hare_compat.app import shared_task as shared_task
from hare_compat.app.base import Celery as Celery
from hare_compat.app.task import Task as Task
from hare_compat.canvas import Signature as Signature
from hare_compat.canvas import chain as chain
from hare_compat.canvas import chord as chord
from hare_compat.canvas import group as group
from hare_compat.canvas import maybe_signature as maybe_signature
from hare_compat.canvas import set_default_app_resolver
from hare_compat.canvas import signature as signature
from hare_compat.canvas import subtask as subtask
from hare_compat.utils import bugreport as bugreport
from hare_compat.utils import uuid as uuid

__all__ = (
    "Celery",
    "Signature",
    "Task",
    "bugreport",
    "chain",
    "chord",
    "current_app",
    "current_task",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "subtask",
    "uuid",
)

# A signature made without an app (`signature("tasks.add")`) sends through the current app.
# (cast: CanvasApp declares `tasks` settable; the app's registry is a read-only property.)
set_default_app_resolver(cast(Any, get_current_app))
