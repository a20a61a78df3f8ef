"""An app for the dashboard's browser tests and screenshots (`hare worker` and `hare dashboard`
subprocesses load it).

Environment: DASH_QUEUE (the default queue, "dash"), DASH_LEDGER (a file each successful run of
`dash.charge` appends its key to), DASH_FIXED (a file: while it does not exist, `dash.charge`
fails and so dead-letters), HARE_BROKER_URL.
"""

from __future__ import annotations

import asyncio
import os

from hare import Hare, every

QUEUE = os.environ.get("DASH_QUEUE", "dash")
app = Hare(os.environ.get("DASH_APP", "dash"), default_queue=QUEUE)


@app.task(name="dash.charge")
def charge(key: str) -> str:
    fixed = os.environ.get("DASH_FIXED")
    if not fixed or not os.path.exists(fixed):
        raise ValueError(f"payment provider down for {key}")
    ledger = os.environ.get("DASH_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as out:
            out.write(key + "\n")
    return f"charged {key}"


@app.task(name="dash.email", queue=f"{QUEUE}.emails")
async def email(to: str) -> None:
    await asyncio.sleep(float(os.environ.get("DASH_EMAIL_SECONDS", "0")))


@app.periodic(every(hours=1), name="hourly-report")
async def report() -> None:
    """A periodic schedule, for the schedules table."""
