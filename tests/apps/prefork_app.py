"""Tasks for the prefork pool's tests: sync tasks run in the pool's children.

A module of its own so that a spawned child imports the same app (`tests.apps.prefork_app:app`).
Tasks that must be seen running write a marker file: the test waits for it (bounded), since a
child runs on its own schedule, then moves the manual clock.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

from hare.errors import SoftTimeLimitExceeded
from hare.middleware import Middleware
from hare.testing import ManualClock, memory_app
from hare.worker.request import Request


class NotePid(Middleware):
    """Writes the pid its `before_run` and `after_run` ran in, for `pf.pid_noted`."""

    def before_run(self, request: Request) -> None:
        if request.task == "pf.pid_noted":
            Path(request.args[0], "before").write_text(str(os.getpid()))

    def after_run(self, request: Request, state: str, value: object) -> None:
        if request.task == "pf.pid_noted":
            Path(request.args[0], "after").write_text(f"{os.getpid()} {state}")


clock = ManualClock()
app = memory_app(clock, main="prefork", result_backend="memory://", middleware=[NotePid()])


@app.task(name="pf.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="pf.pid")
def pid() -> int:
    return os.getpid()


@app.task(name="pf.pid_noted")
def pid_noted(directory: str) -> int:
    return os.getpid()


@app.task(name="pf.pid_in_thread", isolation="thread")
def pid_in_thread() -> int:
    return os.getpid()


@app.task(name="pf.boom", max_retries=0)
def boom() -> None:
    raise ValueError("kaboom in the child")


@app.task(name="pf.nap")
def nap(marker: str) -> str:
    """Blocks in a C call (time.sleep) until the soft limit interrupts it."""
    try:
        Path(marker).touch()
        time.sleep(60)
        return "slept"
    except SoftTimeLimitExceeded:
        return "partial"


@app.task(name="pf.stubborn", max_retries=0)
def stubborn(marker: str) -> None:
    while True:  # swallows the soft limit: only the hard one stops it
        try:
            Path(marker).touch()
            time.sleep(60)
        except SoftTimeLimitExceeded:
            continue


@app.task(name="pf.exit", max_retries=0)
def exit_(code: int) -> None:
    os._exit(code)


@app.task(name="pf.kill", max_retries=0)
def kill(signum: int) -> None:
    os.kill(os.getpid(), signum)


@app.task(name="pf.segfault", max_retries=0)
def segfault() -> None:
    faulthandler.disable()  # pytest's dump of the child's stack would only be noise here
    os.kill(os.getpid(), signal.SIGSEGV)


@app.task(name="pf.lost_retried", retry_on_worker_lost=True, max_retries=1)
def lost_retried(marker: str) -> str:
    if not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return "second run"


@app.task(name="pf.lost_requeued", reject_on_worker_lost=True, max_retries=0)
def lost_requeued(marker: str) -> str:
    if not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return "delivered again"


@app.task(name="pf.hog", max_retries=0)
def hog(megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


@app.task(name="pf.fan_out")
def fan_out(n: int) -> int:
    for i in range(n):
        add.delay(i, i)
    return n


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickles, but does not unpickle
        super().__init__(f"{a}/{b}")


@app.task(name="pf.odd_error", max_retries=0)
def odd_error() -> None:
    raise Unpicklable(1, 2)


@app.task(name="pf.wait_for_stop")
def wait_for_stop(marker: str) -> str:
    Path(marker).touch()
    time.sleep(60)
    return "not stopped"
