"""Tasks for the process-isolation tests: importable by module and name in a spawned child."""

from __future__ import annotations

import os
import signal
import time

from hare import Hare
from hare.errors import SoftTimeLimitExceeded

app = Hare("isolated", broker="memory://", environ={})


@app.task(name="iso.add", isolation="process")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="iso.pid", isolation="process")
def pid() -> int:
    return os.getpid()


@app.task(name="iso.boom", isolation="process")
def boom() -> None:
    raise ValueError("kaboom in the child")


@app.task(name="iso.crunch", isolation="process")
def crunch(marker: str) -> str:
    try:
        open(marker, "w").close()  # tell the test the try block is running
        while True:
            sum(range(1000))
    except SoftTimeLimitExceeded:
        return "cleaned up"


@app.task(name="iso.stubborn", isolation="process")
def stubborn(marker: str) -> None:
    while True:  # swallows the soft limit: only the hard one stops it
        try:
            open(marker, "w").close()
            time.sleep(3600)
        except SoftTimeLimitExceeded:
            continue


@app.task(name="iso.segfault", isolation="process")
def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)
