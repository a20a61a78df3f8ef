"""The upgrade from periodic v1: a v2 scheduler stays passive while v1 workers run.

v1 workers (hare before periodic v2) consume `hare.sched.v1.<app>.ticks` and offer ticks to
classic slots of their own; v2 workers use other queues (`hare.periodic.ticks.PREFIX`). Both
running the schedules would fire every occurrence twice, so the v2 leader fires nothing while
the v1 tick queue has consumers. Once it has had none for `QUIET` seconds (two looks: a v1
worker reconnecting is away for a moment), the v2 leader deletes the v1 slots of the schedules
it knows and the v1 tick queue, and takes over. The occurrences between the last v1 worker's
exit and the takeover are missed: at most one watchdog period plus `QUIET`.

The look is a passive declare. Once the v1 tick queue is gone this process stops looking: a 404
closes the channel and RabbitMQ logs it, which should not happen every round forever. Rolling
back to v1 therefore means stopping the v2 workers first (docs/guide.md, "Periodic tasks").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from hare.clock import Clock
from hare.errors import NotFound
from hare.periodic.ticks import v1_slot_name, v1_tick_queue_name
from hare.transport.base import Transport

__all__ = ("QUIET", "Upgrade")

logger = logging.getLogger("hare.periodic")

#: How long the v1 tick queue must have had no consumers before v2 takes over.
QUIET = 5.0


class Upgrade:
    """Whether v1 workers still run the schedules of `app`, and the takeover from them."""

    def __init__(
        self, app: str, transport: Transport, clock: Clock, schedules: Iterable[str]
    ) -> None:
        self.app = app
        self._transport = transport
        self._clock = clock
        self._schedules = tuple(schedules)
        #: Set once v2 runs the schedules: no v1 queue, or the v1 workers gone and their
        #: queues deleted. Never unset in this process.
        self.done = False
        #: Seconds until the next look is worth it, while waiting out `QUIET`.
        self.recheck: float | None = None
        self._quiet_since: float | None = None
        self._told = False
        self._lock = asyncio.Lock()

    async def allows(self) -> bool:
        """Whether this (leading) worker may run the schedules now."""
        if self.done:
            return True
        async with self._lock:  # ticks arriving together share one look
            if not self.done:
                self.done = await self._look()
        return self.done

    async def _look(self) -> bool:
        self.recheck = None
        try:
            consumers = await self._transport.consumer_count(v1_tick_queue_name(self.app))
        except NotFound:
            return True  # never upgraded from v1, or done already
        if consumers > 0:
            self._quiet_since = None
            if not self._told:
                self._told = True
                logger.warning(
                    "periodic v1 workers still run the schedules of %s (%d consume %s): this "
                    "worker fires nothing until they are gone",
                    self.app,
                    consumers,
                    v1_tick_queue_name(self.app),
                )
            return False
        now = self._clock.monotonic()
        if self._quiet_since is None:
            self._quiet_since = now
        if now - self._quiet_since < QUIET:
            self.recheck = QUIET - (now - self._quiet_since)
            return False
        await self._retire_v1()
        return True

    async def _retire_v1(self) -> None:
        for schedule in self._schedules:
            await self._transport.delete_queue(v1_slot_name(self.app, schedule))
        await self._transport.delete_queue(v1_tick_queue_name(self.app))
        logger.warning(
            "periodic v1 workers of %s are gone: deleted their queues; v2 runs the schedules",
            self.app,
        )
