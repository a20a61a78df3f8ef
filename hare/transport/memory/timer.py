"""The in-memory broker's timer: wake at the earliest deadline any queue has, on a Clock.

Deadlines are whole milliseconds on the broker clock's monotonic time (message TTLs, idle
queues with `x-expires`). The broker says what the earliest one is and what to do when it is
due; the timer sleeps until then, and a new earlier deadline (`poke`) wakes it to sleep less.
Nothing here is public API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hare.clock import Clock

__all__ = ("DeadlineTimer", "now_ms")


def now_ms(clock: Clock) -> int:
    """`clock`'s monotonic time in whole milliseconds, as RabbitMQ keeps expiry.

    Integer maths keeps a ManualClock's deadlines exact (0.1 + 0.2 s never lands a hair short
    of 300 ms).
    """
    return round(clock.monotonic() * 1000)


class DeadlineTimer:
    """Call `fire(now)` whenever the deadline `next_deadline()` reports has come."""

    def __init__(
        self,
        clock: Callable[[], Clock],
        next_deadline: Callable[[], int | None],
        fire: Callable[[int], None],
    ) -> None:
        self._clock = clock
        self._next_deadline = next_deadline
        self._fire = fire
        self._task: asyncio.Task[None] | None = None
        self._deadline: int | None = None
        self._wake: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop; re-raise what made the timer fail, rather than lose it."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.result()

    def poke(self, deadline: int | None) -> None:
        """A deadline appeared: wake the timer if it sleeps past it."""
        if deadline is None or self._wake is None or self._wake.done():
            return
        if self._deadline is None or deadline < self._deadline:
            self._wake.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._fire(now_ms(self._clock()))
                self._deadline = self._next_deadline()
                self._wake = wake = loop.create_future()
                if self._deadline is None:
                    await wake
                    continue
                delay = max(0, self._deadline - now_ms(self._clock())) / 1000
                sleeper = loop.create_task(self._clock().sleep(delay))
                try:
                    await asyncio.wait({sleeper, wake}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    await asyncio.wait({sleeper})
                if not sleeper.cancelled() and sleeper.exception() is not None:
                    sleeper.result()  # the clock failed: let the timer fail loudly
        finally:
            if self._wake is not None:
                self._wake.cancel()
            self._wake = None
            self._deadline = None
