"""Django-style settings of the shop: Celery's settings with the `CELERY_` prefix."""

import os
from datetime import timedelta

from celery.schedules import crontab

# The deployment names its broker and result store in the environment. The prefix follows the
# package name, because the compat harness loads this project twice (`shop`, `shop_hare`).
_ENV = __name__.split(".")[0].upper()

CELERY_BROKER_URL = os.environ.get(f"{_ENV}_BROKER_URL", "amqp://guest:guest@localhost:5672//")
CELERY_RESULT_BACKEND = os.environ.get(f"{_ENV}_RESULT_BACKEND", "redis://localhost:6379/0")
CELERY_RESULT_EXPIRES = 600
CELERY_TIMEZONE = "Europe/Berlin"
CELERY_ENABLE_UTC = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

CELERY_TASK_ROUTES = {
    "shop.tasks.nightly_report": {"queue": "reports"},
    "shop.tasks.export_*": {"queue": "reports"},
}

CELERY_BEAT_SCHEDULE = {
    "nightly-report": {
        "task": "shop.tasks.nightly_report",
        "schedule": crontab(hour=3, minute=0, day_of_week="mon-fri"),
        "args": ("eu",),
    },
    "restock": {
        "task": "shop.tasks.add",
        "schedule": timedelta(minutes=10),
        "args": (1, 2),
    },
}
