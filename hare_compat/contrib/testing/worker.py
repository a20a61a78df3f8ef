"""A hare worker inside the test process, as `celery.contrib.testing.worker` embeds Celery's.

`start_worker(app)` runs `hare.Worker` for the app on an event loop of its own, in a daemon
thread of the test process, waits until it consumes, checks that it answers `celery.ping`,
yields it, then drains it (running tasks finish) and joins the thread. Tests can therefore
read what the worker does in their own process: its log records (`caplog`), the signals it
sends (`task_received`...), and `hare_compat.worker.state`.

Sync tasks run in the worker's thread pool and async tasks on its loop, whatever `pool`
names (`solo`, `threads` and `prefork` are accepted: hare has no process pool yet).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import hare_compat.worker.state  # noqa: F401  (its receivers must see the worker start)
from hare import Worker
from hare.app import HARE_LOGGERS
from hare.errors import NotSupportedError
from hare.signals import Signal
from hare_compat.app.base import Celery
from hare_compat.app.trace import CELERY_LOGGERS
from hare_compat.contrib.testing.tasks import ping
from hare_compat.utils.nodenames import anon_nodename

__all__ = (
    "TestWorkController",
    "start_worker",
    "test_worker_started",
    "test_worker_starting",
    "test_worker_stopped",
)

#: The level of the worker's own loggers: its task lines (`celery.worker.strategy`,
#: `celery.app.trace`) and hare's. INFO by default (Celery's embedded worker says "error"),
#: so that a test's `caplog` sees `Task ... received` / `succeeded in`.
WORKER_LOGLEVEL = os.environ.get("WORKER_LOGLEVEL", "info")
#: Pool names accepted: tasks run in hare's way (threads and the loop) whichever is named.
POOLS = frozenset({"solo", "threads", "prefork"})
#: Options of Celery's embedded worker with nothing to do in hare's.
_ACCEPTED = frozenset({"without_heartbeat", "without_mingle", "without_gossip"})

test_worker_starting = Signal("test_worker_starting")
test_worker_started = Signal("test_worker_started")
test_worker_stopped = Signal("test_worker_stopped")


class TestWorkController:
    """The in-process worker `start_worker` yields: the hare worker and its thread."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Celery, worker: Worker) -> None:
        self.app = app
        self.worker = worker
        self.hostname = worker.nodename
        self.concurrency = worker.concurrency
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"hare {self.hostname}", daemon=True)

    def start(self) -> None:
        """Start the worker's thread; return once it consumes (or raise why it stopped)."""
        self._thread.start()
        self._ready.wait()
        if self.error is not None:
            raise self.error

    def stop(self, timeout: float) -> None:
        """Drain the worker (what runs finishes) and join its thread within `timeout`."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.worker.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(
                "Worker thread failed to exit within the allocated timeout. Consider raising "
                "`shutdown_timeout` if your tasks take longer to execute."
            )

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        run = asyncio.ensure_future(self.worker.run())
        ready = asyncio.ensure_future(self.worker.wait_ready())
        await asyncio.wait({run, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            test_worker_started.send(sender=self.app, worker=self, consumer=None)
        else:
            ready.cancel()
        self._ready.set()
        await run


@contextmanager
def start_worker(
    app: Celery,
    concurrency: int = 1,
    pool: str = "solo",
    loglevel: str | int | None = WORKER_LOGLEVEL,
    logfile: str | None = None,
    perform_ping_check: bool = True,
    ping_task_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
    **kwargs: Any,
) -> Iterator[TestWorkController]:
    """Run a hare worker for `app` in this process for the block (Celery's signature).

    `hostname` (default `gen<pid>@<host>`, as Celery's) and `queues` (default: the app's, as
    `hare worker` consumes them) may be given; `loglevel` sets the level of the worker's
    loggers (its task lines and hare's own). An option hare's worker does not have raises
    `NotSupportedError`.
    """
    if pool not in POOLS:
        raise NotSupportedError(f"start_worker(pool={pool!r})", f"hare runs {sorted(POOLS)}")
    if logfile is not None:
        raise NotSupportedError("start_worker(logfile=)", "configure logging handlers instead")
    hostname = kwargs.pop("hostname", None) or anon_nodename()
    queues: Sequence[str] | None = kwargs.pop("queues", None)
    unknown = set(kwargs) - _ACCEPTED
    if unknown:
        raise NotSupportedError(f"start_worker({', '.join(sorted(unknown))}=)", "not in hare")
    if loglevel is not None:
        level = loglevel.upper() if isinstance(loglevel, str) else loglevel
        for name in ("hare", *HARE_LOGGERS, *CELERY_LOGGERS):
            logging.getLogger(name).setLevel(level)
    test_worker_starting.send(sender=app)
    controller: TestWorkController | None = None
    try:
        app.finalize()
        app.set_current()
        app.set_default()
        hare_app = app.__hare_app__()
        options = app.worker_options()
        worker = Worker(
            hare_app,
            queues=queues or options.get("queues"),
            concurrency=concurrency,
            drain_timeout=shutdown_timeout,
            nodename=hostname,
        )
        controller = TestWorkController(app, worker)
        controller.start()
        try:
            if perform_ping_check:
                assert ping.delay().get(timeout=ping_task_timeout) == "pong"
            yield controller
        finally:
            controller.stop(shutdown_timeout + 5.0)
    finally:
        test_worker_stopped.send(sender=app, worker=controller)
