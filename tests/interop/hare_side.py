"""The hare half of the interop fleet: the same task names as `tests/interop/celery_side.py`.

`hare worker tests.interop.hare_side:app` runs `app`, configured from the environment:
`INTEROP_HARE_QUEUE` (default queue), `INTEROP_LEDGER`, and hare's own `HARE_BROKER_URL`,
`HARE_QUEUE_TYPE` (the harness sets `classic`, Celery's declaration, unless a test needs
quorum, or hare's own defaults: `INTEROP_HARE_DEFAULTS=1`). Tests build clients of their own
with `make_app`. Every task appends its execution to the ledger with `worker="hare"`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from hare import Hare, Retry
from hare import context as hare_context
from tests.interop import ledger

__all__ = ("app", "make_app")


def _record(task: str, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    running = hare_context.current()
    return ledger.record(
        worker="hare",
        task=task,
        task_id=running.id if running is not None else None,
        retries=running.retries if running is not None else None,
        key=key,
        args=args,
        kwargs=kwargs,
    )


async def record(*args: Any, key: str, sleep_ms: int = 0, **kwargs: Any) -> str:
    """Note the call (positional and keyword arguments, with their types); return `key`."""
    _record("interop.record", key, args, kwargs)
    if sleep_ms:
        await asyncio.sleep(sleep_ms / 1000)
    return key


def add(x: Any, y: Any, *, key: str) -> Any:
    """`x + y`, in the worker's thread pool: a chain step."""
    _record("interop.add", key, (x, y), {})
    return x + y


def retry_once(*, key: str, countdown: float = 1.0, retry_queue: str | None = None) -> str:
    """Ask for a retry on the first execution of `key`; succeed on the second. (hare's `Retry`
    has no queue: `retry_queue` is for the Celery twin and only recorded here.)"""
    kwargs = {"countdown": countdown, "retry_queue": retry_queue}
    if _record("interop.retry_once", key, (), kwargs) == 1:
        raise Retry(countdown=countdown)
    return key


def boom(*, key: str) -> None:
    """Fail with ValueError (for FAILURE results)."""
    _record("interop.boom", key, (), {})
    raise ValueError(f"boom {key}")


async def hare_only(*, key: str) -> str:
    """A task Celery does not know: a Celery worker drops it (see test_unknown_task)."""
    _record("interop.hare_only", key, (), {})
    return key


def make_app(
    broker_url: str | None = None,
    default_queue: str = "interop.hare",
    *,
    hare_defaults: bool = False,
    **settings: Any,
) -> Hare:
    """A hare app with the interop tasks; `queue_type` defaults to classic (Celery's queues),
    or with `hare_defaults` to hare's own default (quorum)."""
    if not hare_defaults:
        settings.setdefault("queue_type", "classic")
    app = Hare("interop", broker=broker_url, default_queue=default_queue, **settings)
    for fn in (record, add, retry_once, boom, hare_only):
        app.task(name=f"interop.{fn.__name__}")(fn)
    return app


app = make_app(
    default_queue=os.environ.get("INTEROP_HARE_QUEUE", "interop.hare"),
    result_backend=os.environ.get("INTEROP_HARE_RESULTS") or None,
    hare_defaults=os.environ.get("INTEROP_HARE_DEFAULTS") == "1",
)
