"""A clock that only moves when the test says so.

`ManualClock` implements `hare.clock.Clock`. Give it to the runtime (and to
`hare.transport.memory.MemoryTransport`) and time stands still: `sleep` returns only once the
test advances the clock past the sleeper's deadline, so timers, TTLs and retries run
deterministically and a test never waits in real time.

    clock = ManualClock()
    transport = MemoryTransport(clock=clock)
    ...
    await clock.advance_by(30)   # fires every timer due in the next 30 s, in order
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from typing import final

__all__ = ("ManualClock",)

_NS_PER_SECOND = 1_000_000_000

#: The most times `yield_control` lets the event loop go round by default. It stops as soon
#: as no task is ready to run, so this bound matters only for tasks that never block.
DEFAULT_ROUNDS = 1_000


def _to_ns(seconds: float) -> int:
    """`seconds` in nanoseconds, rounded to the microsecond: a duration computed as the
    difference of two epoch times (floats near 1.8e9, precise to about 0.25 us) must land on
    the deadline it was meant for, not a few nanoseconds past an `advance_by` target."""
    if math.isnan(seconds):
        raise ValueError("a duration must be a number, not NaN")
    return round(seconds * 1_000_000) * 1_000


@final
class ManualClock:
    """A `Clock` that moves only when `advance` or `advance_by` is called.

    Time is kept in integer nanoseconds so that advancing by 0.1 three times lands exactly
    where advancing by 0.3 does; `time()` and `monotonic()` convert on the way out.
    """

    def __init__(self, start: float = 1_800_000_000.0, *, monotonic_start: float = 0.0) -> None:
        self._wall_offset_ns = _to_ns(start)
        self._monotonic_offset_ns = _to_ns(monotonic_start)
        self._elapsed_ns = 0
        # (deadline in elapsed ns, arrival order, waiter): a heap, so wake-ups come out in
        # deadline order and sleepers with equal deadlines in the order they went to sleep.
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    def time(self) -> float:
        """Seconds since the epoch: `start` plus however far the clock was advanced."""
        return (self._wall_offset_ns + self._elapsed_ns) / _NS_PER_SECOND

    def monotonic(self) -> float:
        """Seconds on the monotonic clock: `monotonic_start` plus the advances."""
        return (self._monotonic_offset_ns + self._elapsed_ns) / _NS_PER_SECOND

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by `seconds`; `sleep(0)` only yields."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds == math.inf:
            await waiter  # never woken by the clock; only cancellation ends it
            return
        duration = _to_ns(seconds)
        if duration <= 0:
            await asyncio.sleep(0)
            return
        deadline = self._elapsed_ns + duration
        heapq.heappush(self._sleepers, (deadline, next(self._arrivals), waiter))
        await waiter

    @property
    def pending(self) -> int:
        """How many sleepers are waiting for the clock."""
        return sum(1 for _, _, waiter in self._sleepers if not waiter.done())

    def next_deadline(self) -> float | None:
        """The monotonic time of the earliest pending wake-up, or `None` if nobody sleeps."""
        deadline = self._next_deadline_ns()
        if deadline is None:
            return None
        return (self._monotonic_offset_ns + deadline) / _NS_PER_SECOND

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake every sleeper whose deadline has passed.

        Woken tasks run the next time the event loop gets control; use `advance_by` to let
        them run, and to fire the timers they set in turn, as the time goes by.
        """
        step = _to_ns(seconds)
        if step < 0:
            raise ValueError(f"a clock cannot go back (advance by {seconds})")
        self._elapsed_ns += step
        self._wake_due()

    async def advance_by(self, seconds: float) -> None:
        """Advance `seconds`, stopping at every deadline on the way so woken tasks run.

        A task woken at t=1 that sleeps another second is woken again at t=2 within the same
        call, exactly as it would be in real time, and the clock reads the deadline while it
        runs rather than the end of the jump.
        """
        step = _to_ns(seconds)
        if step < 0:
            raise ValueError(f"a clock cannot go back (advance by {seconds})")
        target = self._elapsed_ns + step
        await self.yield_control()
        while (deadline := self._next_deadline_ns()) is not None and deadline <= target:
            self._elapsed_ns = max(self._elapsed_ns, deadline)
            self._wake_due()
            await self.yield_control()
        self._elapsed_ns = target
        await self.yield_control()

    async def yield_control(self, rounds: int = DEFAULT_ROUNDS) -> None:
        """Let the event loop run until every task is blocked (at most `rounds` times).

        Blocked means waiting on something other than the loop's next turn: this clock, a
        future, I/O, a thread (work handed to a thread pool is not waited for). CPython's
        event loops keep their runnable callbacks in `_ready`; on a loop without it this
        yields exactly `rounds` times.
        """
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        for _ in range(rounds):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                return

    def _next_deadline_ns(self) -> int | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # a cancelled sleeper
        return self._sleepers[0][0] if self._sleepers else None

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._elapsed_ns:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)
