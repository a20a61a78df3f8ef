"""A tiny in-house audit library the example projects use: one JSON line per event.

It imports nothing from Celery, so the compat harness loads it once for both variants. Each
line names the project package that wrote it (`shop` for the Celery variant, `shop_hare` for
the hare variant), the process and the wall-clock time; one write(2) on an O_APPEND file per
line, so lines from threads and processes never interleave and file order is real order.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

#: The environment variable naming the ledger file; without it nothing is written.
ENV = "COMPAT_LEDGER"


class Audit:
    """`Audit(__name__).note(event, **fields)` appends one line for the module's package."""

    def __init__(self, module: str) -> None:
        self.package = module.partition(".")[0]

    def note(self, event: str, **fields: Any) -> None:
        path = os.environ.get(ENV)
        if not path:
            return
        line = {"pkg": self.package, "event": event, "pid": os.getpid(), "t": time.time()}
        line.update(fields)
        data = (json.dumps(line, default=repr) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
