"""Concurrency slots handed out by rank: a waiting high-band delivery before a low-band one.

A worker that consumes several queues (several queues of its own, or a queue and its
priority band `<queue>.high`) holds up to `concurrency` deliveries of each, and at most
`concurrency` run: the others wait here for a slot. The broker cannot order deliveries
across queues, so this is where priority bands take effect: a freed slot goes to the
longest-waiting delivery of the highest rank (`hare.core.priority.band_rank`), first come
first served within a rank.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ("Slots",)


class Slots:
    """`size` slots; `async with slots.taken(rank)` waits for one, highest rank first."""

    def __init__(self, size: int) -> None:
        self._free = size
        # Waiters by rank, each in arrival order.
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}

    @property
    def waiting(self) -> int:
        """Deliveries waiting for a slot."""
        return sum(len(queue) for queue in self._waiting.values())

    @asynccontextmanager
    async def taken(self, rank: int) -> AsyncIterator[None]:
        """Hold a slot for the block; wait for one behind every waiter of a higher or equal
        rank that came first."""
        await self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(rank, deque())
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # granted as it was cancelled: pass the slot on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def _release(self) -> None:
        for rank in sorted(self._waiting, reverse=True):
            queue = self._waiting[rank]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes straight to it
                    return
        self._free += 1
