"""An app for the event fault tests (`tests/faults/test_events_faults.py`): three handlers of
one event that log every run to the fault app's ledger (`tests.apps.fault_app`), keyed
`<handler>:<event key>`.

The app is named after FAULT_QUEUE, so each test has handler queues of its own
(`hare.ev.<FAULT_QUEUE>.tests.apps.events_app.<handler>`), bound for `<FAULT_QUEUE>.paid`.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TypedDict

from hare import Hare
from tests.apps.fault_app import _record

__all__ = ("EVENT", "HANDLERS", "app")

NAME = os.environ.get("FAULT_QUEUE", "faultev")
app = Hare(NAME, default_queue=NAME)
#: The event the three handlers take.
EVENT = f"{NAME}.paid"
HANDLERS = ("receipt", "book", "notify")


class Paid(TypedDict):
    key: str
    ms: int


@app.on(EVENT)
async def receipt(paid: Paid) -> None:
    _record("start", f"receipt:{paid['key']}")
    await asyncio.sleep(paid["ms"] / 1000)
    _record("end", f"receipt:{paid['key']}")


@app.on(EVENT)
def book(paid: Paid) -> None:
    _record("start", f"book:{paid['key']}")
    time.sleep(paid["ms"] / 1000)
    _record("end", f"book:{paid['key']}")


@app.on(EVENT)
async def notify(paid: Paid) -> None:
    _record("start", f"notify:{paid['key']}")
    await asyncio.sleep(paid["ms"] / 2000)
    _record("end", f"notify:{paid['key']}")
