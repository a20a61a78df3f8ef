"""Celery's `celery.utils` names that projects import: `uuid`, `gen_unique_id`, and
`bugreport`."""

from __future__ import annotations

import platform
import uuid as _uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

from hare_compat import _state

__all__ = ("bugreport", "gen_unique_id", "uuid")


def uuid(_uuid: Callable[[], UUID] = _uuid.uuid4) -> str:
    """A new task id: a random UUID as text (Celery's `celery.utils.uuid`)."""
    return str(_uuid())


#: The Celery release whose API hare_compat follows.
CELERY_API = "5.7"


def bugreport(app: Any = None) -> str:
    """Versions and the settings that matter, to paste into a bug report (passwords hidden)."""
    from hare import __version__ as hare_version

    app = app if app is not None else _state.get_current_app()
    conf = app.conf.table(censored=True)
    broker = str(conf.get("broker_url") or "amqp://")
    lines = [
        # Celery's layout (tools read `software -> celery:`): the API is Celery's, served by hare.
        f"software -> celery:{CELERY_API} (hare_compat) hare:{hare_version} "
        f"py:{platform.python_version()}",
        f"platform -> system:{platform.system()} arch:{platform.machine()} "
        f"imp:{platform.python_implementation()}",
        f"settings -> transport:{broker.partition(':')[0]} "
        f"results:{conf.get('result_backend') or 'disabled'}",
        "",
        app.conf.humanize(censored=True),
    ]
    return "\n".join(lines)


gen_unique_id = uuid
