"""Matching rpc replies to the callers waiting for them, across threads and event loops.

One `ReplyRouter` per app and process: one consumer reads the process's reply queue (on
whichever loop started it), and callers wait on any loop (`await` in async code, `get()` on
the portal loop). Replies come in any order and are matched by correlation id. A reply nobody
waits for yet is kept until asked for, up to `limit` of them; beyond that the oldest are
dropped with a warning (a process that sends with results on but never asks for them).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from hare.results.backends.base import settle
from hare.results.state import TaskResult

__all__ = ("CLAIMED_LIMIT", "UNCLAIMED_LIMIT", "ReplyRouter")

logger = logging.getLogger("hare.results")

#: Replies kept for ids nobody waits for yet.
UNCLAIMED_LIMIT = 10_000
#: Ready results already handed out, kept so that asking again (a second handle) still works.
CLAIMED_LIMIT = 1_000


class ReplyRouter:
    """Replies by task id, and the futures waiting for them; safe to use from any thread."""

    def __init__(self, limit: int = UNCLAIMED_LIMIT, claimed_limit: int = CLAIMED_LIMIT) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._claimed_limit = claimed_limit
        self._waiters: dict[str, set[asyncio.Future[TaskResult]]] = {}
        self._unclaimed: OrderedDict[str, TaskResult] = OrderedDict()
        self._claimed: OrderedDict[str, TaskResult] = OrderedDict()
        self._owner: object | None = None
        #: How many unclaimed replies were dropped over the limit.
        self.dropped = 0

    # -- who consumes ---------------------------------------------------------------------

    def claim_consumer(self, candidate: object, is_alive: Callable[[object], bool]) -> bool:
        """Make `candidate` the process's one reply consumer, unless a live one exists."""
        with self._lock:
            if self._owner is None or self._owner is candidate or not is_alive(self._owner):
                self._owner = candidate
                return True
            return False

    def release_consumer(self, candidate: object) -> None:
        with self._lock:
            if self._owner is candidate:
                self._owner = None

    @property
    def consumer(self) -> object | None:
        return self._owner

    # -- replies and waiters -------------------------------------------------------------

    def deliver(self, key: str, result: TaskResult) -> None:
        """A reply arrived for `key` (its correlation id): wake its waiters or keep it."""
        with self._lock:
            waiters: set[asyncio.Future[TaskResult]] = set()
            if result.ready:
                waiters = self._waiters.pop(key, set())
            if waiters:
                self._unclaimed.pop(key, None)
                self._remember_claimed(key, result)
            else:
                known = self._unclaimed.get(key) or self._claimed.get(key)
                if known is not None and known.ready and not result.ready:
                    return  # a late STARTED/RETRY must not hide the final state
                self._keep(key, result)
        for future in waiters:
            settle(future, result)

    def fail(self, key: str, error: BaseException) -> None:
        """A reply for `key` could not be read: its waiters get `error`."""
        with self._lock:
            waiters = self._waiters.pop(key, set())
        for future in waiters:
            settle(future, error)

    def register(self, key: str, future: asyncio.Future[TaskResult]) -> TaskResult | None:
        """The ready result for `key` if it is here (claimed now), else wait with `future`."""
        with self._lock:
            ready = self._take_ready(key)
            if ready is None:
                self._waiters.setdefault(key, set()).add(future)
            return ready

    def unregister(self, key: str, future: asyncio.Future[TaskResult]) -> None:
        with self._lock:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[key]

    def lookup(self, key: str) -> TaskResult | None:
        """The latest reply for `key`, without waiting; a ready one counts as claimed."""
        with self._lock:
            ready = self._take_ready(key)
            if ready is not None:
                return ready
            return self._unclaimed.get(key)

    def forget(self, key: str) -> None:
        with self._lock:
            self._unclaimed.pop(key, None)
            self._claimed.pop(key, None)

    @property
    def unclaimed(self) -> int:
        return len(self._unclaimed)

    # -- under the lock ------------------------------------------------------------------

    def _take_ready(self, key: str) -> TaskResult | None:
        kept = self._unclaimed.get(key)
        if kept is not None and kept.ready:
            del self._unclaimed[key]
            self._remember_claimed(key, kept)
            return kept
        return self._claimed.get(key)

    def _remember_claimed(self, key: str, result: TaskResult) -> None:
        self._claimed[key] = result
        self._claimed.move_to_end(key)
        while len(self._claimed) > self._claimed_limit:
            self._claimed.popitem(last=False)

    def _keep(self, key: str, result: TaskResult) -> None:
        self._unclaimed[key] = result
        self._unclaimed.move_to_end(key)
        while len(self._unclaimed) > self._limit:
            dropped, _ = self._unclaimed.popitem(last=False)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "rpc results: dropped the reply for task %s (%d dropped so far): more than "
                    "%d replies nobody asked for; ask for results you send for, or send "
                    "with ignore_result=True",
                    dropped,
                    self.dropped,
                    self._limit,
                )
