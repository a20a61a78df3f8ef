"""The schedules' slots as the leading scheduler keeps them: one pending tick each.

Only the leader offers to a slot (`hare.periodic.election`), one offer per schedule at a time
(a lock per schedule), and only into an empty slot: a quorum slot's length limit would let a
second tick in. Right before each publish the leader checks it still leads, so an offer is
never made under a lead that ended (a reconnect, a step-down).

Bootstrap and watchdog (`maintain`) offer each schedule a tick for its first occurrence after
`now + guard`; a slot that holds a tick is left alone when the tick is the one this leader put
there, else taken out and settled: the newer spec's tick goes back in (`replaces`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from hare.clock import Clock
from hare.errors import MessageError, MessageReturned, NotFound, PublishNacked
from hare.periodic.election import Election
from hare.periodic.schedules import Periodic
from hare.periodic.ticks import (
    Tick,
    replaces,
    slot_name,
    slot_queue,
    tick_envelope,
    tick_from,
)
from hare.transport.base import Transport

__all__ = ("RECHECK", "Slots")

logger = logging.getLogger("hare.periodic")

#: How soon a watchdog looks again after a round that could not settle the slot: the tick
#: left it between our look at its depth and our `get`. It clears within moments; waiting a
#: whole period instead let an old spec fire for up to two periods after a deploy.
RECHECK = 0.2


class Slots:
    """Offers ticks to the slots of `app`'s schedules, for the leader of `election`."""

    def __init__(
        self,
        app: str,
        transport: Transport,
        clock: Clock,
        election: Election,
        *,
        generation: int,
    ) -> None:
        self.app = app
        self.generation = generation
        self._transport = transport
        self._clock = clock
        self._election = election
        self.offers = self.accepted = 0
        #: Schedules whose pending tick could not be checked, and how soon to look again.
        self.deferred: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._offered: dict[str, Tick] = {}  # what this leader last put in each slot

    def lock(self, schedule: str) -> asyncio.Lock:
        """Held around every offer to `schedule`'s slot (and the look before it)."""
        return self._locks.setdefault(schedule, asyncio.Lock())

    def forget(self) -> None:
        """A new lead: what this worker put in the slots may have fired or changed since."""
        self._offered.clear()

    async def declare(self, schedule: str) -> None:
        await self._transport.declare_queue(slot_queue(self.app, schedule))

    def tick_for(self, entry: Periodic, after: float, *, kind: str = "tick") -> Tick:
        """`entry`'s tick for its first occurrence strictly after `after` (epoch seconds)."""
        moment = datetime.fromtimestamp(after, UTC)
        occurrence = entry.schedule.next_after(moment)
        return Tick(
            app=self.app,
            schedule=entry.name,
            occurrence_ms=round(occurrence.timestamp() * 1000),
            spec=entry.schedule.canonical,
            spec_hash=entry.schedule.spec_hash,
            generation=self.generation if entry.generation is None else entry.generation,
            task=entry.task,
            queue=entry.queue,
            args=entry.args,
            kwargs=entry.kwargs,
            kind=kind,
        )

    def guard(self, entry: Periodic) -> float:
        """How far ahead bootstrap and watchdog offers look: min(2 s, half a period).

        The slot is empty between a tick's expiry and its successor's offer: a watchdog round
        in that moment must offer the successor, not the occurrence firing right now; and
        guard + lateness + handling must stay below the period, or an occurrence could be
        skipped.
        """
        first = entry.schedule.next_after(datetime.fromtimestamp(self._clock.time(), UTC))
        second = entry.schedule.next_after(first)
        return min(2.0, (second - first).total_seconds() / 2)

    async def offer(self, tick: Tick, epoch: int) -> bool:
        """Put `tick` in its slot if the slot is empty: whether it went in.

        The caller holds the schedule's lock. `NotLeading` if this worker no longer leads.
        """
        slot = slot_name(self.app, tick.schedule)
        try:
            if await self._transport.message_count(slot) > 0:
                return False
        except NotFound:  # retired, then defined again: declared anew
            await self.declare(tick.schedule)
        self._election.check(epoch)
        self.offers += 1
        try:
            await self._transport.publish(tick_envelope(tick, now=self._clock.time()))
        except PublishNacked:  # the length limit: something filled the slot after all
            return False
        except MessageReturned:  # the slot was deleted between the look and the publish
            await self.declare(tick.schedule)
            return await self.offer(tick, epoch)
        self.accepted += 1
        self._offered[tick.schedule] = tick
        return True

    async def maintain(self, entry: Periodic, epoch: int) -> None:
        """Make sure `entry` has a pending tick of the newest spec (bootstrap and watchdog)."""
        async with self.lock(entry.name):
            now = self._clock.time()
            guard = self.guard(entry)
            mine = self.tick_for(entry, now + guard)
            if await self.offer(mine, epoch):
                logger.debug("schedule %s: offered occurrence %d", entry.name, mine.occurrence_ms)
                return
            known = self._offered.get(entry.name)
            if known is not None and (known.kind == "lease" or not replaces(mine, known)):
                return  # what this leader put there, of a spec it keeps
            # Do not take out a tick about to fire: it would fire late.
            upcoming = self.tick_for(entry, now).occurrence_ms / 1000
            if upcoming - now < guard:
                self.deferred[entry.name] = upcoming - now + guard
                return
            await self._settle(entry, mine, epoch)

    async def _settle(self, entry: Periodic, mine: Tick, epoch: int) -> None:
        """Take the pending tick out and put back the one that should be pending.

        Never `reject(requeue=True)`: a requeued message bypasses `x-max-length`, and the slot
        could end up holding two ticks (measured).
        """
        self._election.check(epoch)
        delivery = await self._transport.get(slot_name(self.app, entry.name))
        if delivery is None:
            self.deferred[entry.name] = RECHECK  # the tick is firing; its successor follows
            return
        try:
            pending = tick_from(delivery.body, delivery.properties)
        except MessageError:
            await self._transport.ack(delivery)  # garbage in a slot: replace it
            await self.offer(mine, epoch)
            return
        keep = pending if pending.kind == "lease" or not replaces(mine, pending) else mine
        await self._transport.ack(delivery)
        if not await self.offer(keep, epoch):
            self.deferred[entry.name] = RECHECK
        elif keep is mine:
            logger.warning(
                "schedule %s: replaced pending tick (generation %d, %s) with generation %d, %s",
                entry.name,
                pending.generation,
                pending.spec,
                mine.generation,
                mine.spec,
            )

    async def release(self, entry: Periodic, epoch: int) -> None:
        """An `overlap=False` run finished: replace its lease with the next tick."""
        async with self.lock(entry.name):
            self._election.check(epoch)
            delivery = await self._transport.get(slot_name(self.app, entry.name))
            if delivery is None:  # the lease expired already; its tick offers the next one
                return
            try:
                pending: Tick | None = tick_from(delivery.body, delivery.properties)
            except MessageError:
                pending = None
            await self._transport.ack(delivery)
            if pending is not None and pending.kind != "lease":
                await self.offer(pending, epoch)  # not a lease: put it back as it was
                return
            await self.offer(self.tick_for(entry, self._clock.time()), epoch)
