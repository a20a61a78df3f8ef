"""Concurrency slots handed out by rank: a waiting high-band delivery before a low-band one.

A worker that consumes several queues (several queues of its own, or a queue and its
priority band `<queue>.high`) holds up to `concurrency` deliveries of each, and at most
`concurrency` run: the others wait here for a slot. The broker cannot order deliveries
across queues, so this is where priority bands take effect: a freed slot goes to the
longest-waiting delivery of the highest rank (`hare.core.priority.band_rank`), first come
first served within a rank.

Except once in `FAIR_SHARE` grants: while deliveries of a higher rank keep coming, every
`FAIR_SHARE`-th slot goes to the lowest rank that waits. A high band with a long backlog slows
the low band down instead of stopping it; strictly, a low delivery held unacked for the whole
backlog would meet RabbitMQ's `consumer_timeout` (30 min), which closes its channel. A single
high delivery still takes the next slot.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ("FAIR_SHARE", "Slots")

#: Under a backlog of higher-ranked deliveries, one slot in this many goes to a lower rank.
FAIR_SHARE = 10


class Slots:
    """`size` slots: `await slots.acquire(rank)` waits for one, highest rank first, and
    `slots.release()` gives it back (`try`/`finally`: a plain pair costs a delivery a few
    µs less than an async context manager)."""

    def __init__(self, size: int) -> None:
        self._free = size
        # Waiters by rank, each in arrival order, and how many futures the queues hold.
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}
        self._queued = 0
        # Slots given to a higher rank in a row while a lower one waited.
        self._passed_over = 0

    @property
    def waiting(self) -> int:
        """Deliveries waiting for a slot."""
        return sum(1 for queue in self._waiting.values() for w in queue if not w.done())

    async def acquire(self, rank: int) -> None:
        """Take a slot; wait for one behind every waiter of a higher or equal rank that came
        first."""
        if self._free > 0 and not self._queued:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(rank, deque())
        queue.append(waiter)
        self._queued += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted as it was cancelled: pass the slot on
            elif waiter in queue:
                queue.remove(waiter)
                self._queued -= 1
            raise

    def release(self) -> None:
        """Give a slot back: to the next waiter in rank order, else to the free ones."""
        if not self._queued:
            self._passed_over = 0
            self._free += 1
            return
        for rank in self._order():
            queue = self._waiting[rank]
            while queue:
                waiter = queue.popleft()
                self._queued -= 1
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes straight to it
                    return
        self._free += 1

    def _order(self) -> list[int]:
        """The ranks in the order this slot is offered: highest first, but lowest first once
        `FAIR_SHARE - 1` slots in a row went past a waiting lower rank."""
        ranks = sorted((rank for rank, queue in self._waiting.items() if queue), reverse=True)
        if len(ranks) < 2:
            self._passed_over = 0
            return ranks
        if self._passed_over >= FAIR_SHARE - 1:
            self._passed_over = 0
            return ranks[::-1]
        self._passed_over += 1
        return ranks
