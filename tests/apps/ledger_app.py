"""An app for `hare worker` subprocess tests: every run appends its task id to a ledger file.

Configured by environment variables so the test can point it at its own queue and file:
LEDGER_FILE (required), LEDGER_QUEUE (default "ledger"), HARE_BROKER_URL.
"""

from __future__ import annotations

import os

from hare import Hare

app = Hare("ledger", default_queue=os.environ.get("LEDGER_QUEUE", "ledger"))
_ledger = os.open(os.environ["LEDGER_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _record(value: str) -> None:
    # One write(2) per run on an O_APPEND file: atomic across threads and processes.
    os.write(_ledger, (value + "\n").encode())


@app.task(name="ledger.record")
async def record(key: str) -> None:
    _record(key)


@app.task(name="ledger.record_sync")
def record_sync(key: str) -> None:
    _record(key)
