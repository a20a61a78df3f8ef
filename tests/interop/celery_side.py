"""The Celery half of the interop fleet: a real Celery 5 app with the same task names as hare's.

`python -m celery -A tests.interop.celery_side worker ...` runs `app`, configured from the
environment (`INTEROP_BROKER_URL`, `INTEROP_CELERY_QUEUE`, `INTEROP_LEDGER`). Tests build
clients of their own with `make_app`. Every task appends its execution to the ledger
(`tests/interop/ledger.py`) with `worker="celery"`; `tests/interop/hare_side.py` defines the
same names for hare.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from tests.interop import ledger

__all__ = ("app", "make_app")

#: Celery's clients format `eta`/`expires` in this zone (`+01:00`/`+02:00` on the wire), so
#: every test also checks that hare reads offsets other than UTC's.
TIMEZONE = "Europe/Berlin"


def _record(task: Any, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return ledger.record(
        worker="celery",
        task=task.name,
        task_id=task.request.id,
        retries=task.request.retries,
        key=key,
        args=args,
        kwargs=kwargs,
    )


def record(self: Any, *args: Any, key: str, sleep_ms: int = 0, **kwargs: Any) -> str:
    """Note the call (positional and keyword arguments, with their types); return `key`."""
    _record(self, key, args, kwargs)
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
    return key


def add(self: Any, x: Any, y: Any, *, key: str) -> Any:
    """`x + y`: a chain step (the previous step's result arrives as `x`)."""
    _record(self, key, (x, y), {})
    return x + y


def retry_once(
    self: Any, *, key: str, countdown: float = 1.0, retry_queue: str | None = None
) -> str:
    """Ask for a retry on the first execution of `key` (to `retry_queue`, if given); succeed on
    the second. Attempts are counted in the ledger, so they may run on either side."""
    if _record(self, key, (), {"countdown": countdown, "retry_queue": retry_queue}) == 1:
        raise self.retry(countdown=countdown, queue=retry_queue, max_retries=3)
    return key


def boom(self: Any, *, key: str) -> None:
    """Fail with ValueError (for FAILURE results)."""
    _record(self, key, (), {})
    raise ValueError(f"boom {key}")


def celery_only(self: Any, *, key: str) -> str:
    """A task hare does not know: a hare worker must dead-letter it, never drop it."""
    _record(self, key, (), {})
    return key


def make_app(broker_url: str, default_queue: str = "interop.celery", **conf: Any) -> Celery:
    """A Celery app with the interop tasks, rpc results and `default_queue`."""
    app = Celery("interop", broker=broker_url, backend="rpc://", set_as_current=False)
    app.conf.update(
        task_default_queue=default_queue,
        timezone=TIMEZONE,
        broker_connection_retry_on_startup=True,
        result_expires=600,
        worker_hijack_root_logger=False,
        **conf,
    )
    for fn in (record, add, retry_once, boom, celery_only):
        app.task(bind=True, name=f"interop.{fn.__name__}")(fn)
    return app


app = make_app(
    os.environ.get("INTEROP_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    os.environ.get("INTEROP_CELERY_QUEUE", "interop.celery"),
)
