"""A hare_compat app (a Celery project after its imports changed) with the interop tasks.

`hare worker tests.interop.compat_side:app` runs it with hare_compat's defaults (no queue type
set: queues are declared as Celery declares them), configured from the environment like the
other sides (`INTEROP_BROKER_URL`, `INTEROP_COMPAT_QUEUE`, `INTEROP_LEDGER`). Its executions
go to the ledger with `worker="hare"`.
"""

from __future__ import annotations

import os
from typing import Any

from hare_compat import Celery
from tests.interop import ledger

__all__ = ("app",)

app = Celery("interop", broker=os.environ.get("INTEROP_BROKER_URL"), set_as_current=False)
app.conf.task_default_queue = os.environ.get("INTEROP_COMPAT_QUEUE", "interop.compat")


@app.task(name="interop.record", bind=True)
def record(self: Any, *args: Any, key: str, sleep_ms: int = 0, **kwargs: Any) -> str:
    """Note the call; return `key`."""
    ledger.record(
        worker="hare",
        task=self.name,
        task_id=self.request.id,
        retries=self.request.retries,
        key=key,
        args=args,
        kwargs=kwargs,
    )
    return key
