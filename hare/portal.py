"""A bridge from synchronous code to the event loop that publishes: `task.delay()` from a view.

`delay()` must work from any thread (Django views, scripts, sync tasks running in the worker's
thread pool) and must not return before the broker confirmed the message. It hands the publish
to an event loop that owns a connection and blocks on the result:

* inside a worker process, that is the worker's own loop and connection;
* elsewhere, a daemon thread started on first use runs a private loop (one connection for the
  whole process, shared by every thread).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from hare.errors import HareError

__all__ = ("LoopPortal",)

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: How long stopping the private loop may take (closing its connection included).
_STOP_TIMEOUT = 10.0


class LoopPortal:
    """Runs coroutines on one event loop on behalf of other threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread | None) -> None:
        self.loop = loop
        self._thread = thread  # None: the loop belongs to someone else (a worker)

    @classmethod
    def start(cls, name: str) -> LoopPortal:
        """Start a private loop in a daemon thread."""
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=f"hare-portal-{name}", daemon=True)
        thread.start()
        started.wait()
        portal = cls(loop, thread)
        atexit.register(portal.stop)
        return portal

    @property
    def is_usable(self) -> bool:
        return self.loop.is_running() and not self.loop.is_closed()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the portal's loop and block this thread until it finishes."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise HareError(
                "a blocking call (e.g. task.delay()) was made on the event loop that must "
                "serve it, which would deadlock; use `await task.adelay(...)` in async code"
            )
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self, close: Coroutine[Any, Any, None] | None = None) -> None:
        """Run `close` (if given), finish what else runs on the private loop, stop the loop and
        join its thread.

        What else runs (a connection's reader and writer, say) is cancelled and awaited, as
        `asyncio.run` does at its end: a loop closed with tasks pending makes asyncio print
        "Task was destroyed but it is pending!" for each, at the exit of every script that
        called `delay()`."""
        if self._thread is None or not self.loop.is_running():
            if close is not None:
                close.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(_finish(close), self.loop).result(_STOP_TIMEOUT)
        except Exception:
            logger.warning("the publishing loop did not finish cleanly", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(_STOP_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


async def _finish(close: Coroutine[Any, Any, None] | None) -> None:
    if close is not None:
        try:
            await asyncio.wait_for(close, _STOP_TIMEOUT / 2)
        except Exception:
            logger.warning("closing the publishing connection failed", exc_info=True)
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
