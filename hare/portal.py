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
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from hare.errors import HareError

__all__ = ("LoopPortal",)

T = TypeVar("T")


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
        """Run `close` (if given), then stop the private loop and join its thread."""
        if self._thread is None or not self.loop.is_running():
            if close is not None:
                close.close()
            return
        if close is not None:
            try:
                asyncio.run_coroutine_threadsafe(close, self.loop).result(10)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()
