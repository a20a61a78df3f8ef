"""The app a `hare worker` serves for Celery's suite: `hare worker tests.celery_suite.worker_app`.

Configured as `celery.contrib.pytest`'s session app is in Celery's `t/integration/conftest.py`
(broker `TEST_BROKER`, backend `TEST_BACKEND`, `result_extended`, no missing queues created),
with `t.integration.tasks` loaded from Celery's sdist through `tests.celery_suite.hook`, the
class-based task the suite registers (`celery_class_tasks`), and `celery.ping` (the embedded
worker's ping check).
"""

from __future__ import annotations

import os
from pathlib import Path

from hare_compat import Celery
from tests.celery_suite import hook

__all__ = ("app",)

hook.install(Path(os.environ["CELERY_SUITE_ROOT"]))

app = Celery("celery.tests", set_as_current=True, include=["t.integration.tasks"])
app.conf.update(
    # celery.contrib.testing.app's DEFAULT_TEST_CONFIG, under the suite's own celery_config
    worker_hijack_root_logger=False,
    worker_log_color=False,
    accept_content={"json"},
    enable_utc=True,
    timezone="UTC",
    broker_heartbeat=0,
    broker_url=os.environ.get("TEST_BROKER", "pyamqp://"),
    result_backend=os.environ.get("TEST_BACKEND", "redis://"),
    result_extended=True,
    task_create_missing_queues=False,
)
app.set_default()

import t.integration.tasks as tasks  # noqa: E402  (after the hook and the app)


@app.task(name="celery.ping")
def ping() -> str:
    """The embedded test worker's ping task (`celery.contrib.testing.tasks.ping`)."""
    return "pong"


app.register_task(tasks.ClassBasedAutoRetryTask)
