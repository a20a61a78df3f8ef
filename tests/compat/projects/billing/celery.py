"""The billing app: configured in code, results sent back to the caller over rpc://."""

# mypy: disable-error-code="import-not-found,untyped-decorator"

import os

from celery import Celery

# The prefix follows the package name: the compat harness loads this project twice.
_ENV = __name__.split(".")[0].upper()

app = Celery(
    "billing",
    broker=os.environ.get(f"{_ENV}_BROKER_URL", "amqp://guest:guest@localhost:5672//"),
    backend="rpc://",
    include=["billing.tasks"],
    set_as_current=False,  # the shop's app stays the current one in a process with both
)
app.conf.update(
    task_default_queue="payments",
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    result_expires=600,
)

from billing import signals  # noqa: E402,F401
