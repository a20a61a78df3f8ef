"""Periodic tasks without a beat process: every worker keeps every schedule's tick alive.

See `hare.periodic.ticks` for the mechanism. Each worker process, at start and then on a watchdog
timer, offers each schedule a tick for its first occurrence after `now + guard`; the slot
refuses all but one. Whoever receives the expired tick first offers the next tick, then
publishes the task (its id derived from schedule and occurrence), then acks. Offering the next
tick first keeps the slot empty for milliseconds only, and the guard keeps a pod whose clock
lags from re-offering the occurrence that is firing right now.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hare.clock import Clock
from hare.core.envelope import Delivery
from hare.core.headers import PERIODIC_HEADER
from hare.core.message import Message
from hare.errors import MessageError, MessageReturned, PublishNacked
from hare.periodic.schedules import Periodic, parse_canonical
from hare.periodic.ticks import (
    Tick,
    occurrence_task_id,
    replaces,
    slot_queue,
    tick_envelope,
    tick_from,
    tick_queue,
    tick_queue_name,
)
from hare.publisher import Publisher
from hare.transport.base import Consumer, Transport

if TYPE_CHECKING:
    pass

__all__ = ("Scheduler",)

logger = logging.getLogger("hare.periodic")

#: Header on a periodic task's message: `[schedule, occurrence ms]`.
#: A tick this late (all workers were down) is a missed occurrence: skipped unless catch_up.
MISSED_AFTER = 60.0
#: How long an `overlap=False` run holds its schedule before the next occurrence may start
#: anyway (a run whose worker died must not stop the schedule for good).
LEASE = 3600.0
#: How soon a watchdog looks again after a round that could not settle the slot: the tick
#: left it between our refused offer and our look, or another pod refilled it before our
#: replacement went in. Either clears within moments; waiting a whole period instead let an
#: old spec fire for up to two periods after a deploy (seen: 7.7 s with a 3 s watchdog).
RECHECK = 0.2


class Scheduler:
    """Keeps the app's schedules' ticks alive from one worker process."""

    def __init__(
        self,
        app_name: str,
        entries: Mapping[str, Periodic],
        publisher: Publisher,
        *,
        clock: Clock,
        rng: random.Random,
        generation: int = 0,
        watchdog: float = 60.0,
    ) -> None:
        self.app = app_name
        self.entries = dict(entries)
        self._publisher = publisher
        self._transport: Transport = publisher.transport
        self._clock = clock
        self._rng = rng
        self.generation = generation
        self.watchdog = watchdog
        self.offers = self.accepted = 0
        # Schedules whose pending tick could not be checked (an occurrence was about to fire),
        # with how long to wait before checking again.
        self._deferred: dict[str, float] = {}

    # -- life cycle ----------------------------------------------------------------------------

    async def subscribe(self) -> Consumer:
        """Declare the slots and the tick queue, offer ticks, and consume the tick queue."""
        await self._transport.declare_queue(tick_queue(self.app))
        for name in self.entries:
            await self._transport.declare_queue(slot_queue(self.app, name))
        await self.maintain_all()
        return await self._transport.consume(tick_queue_name(self.app), self.on_tick, prefetch=8)

    async def run_watchdog(self) -> None:
        """Every `watchdog` seconds (jittered by ±20%), offer every schedule's tick again.

        A check that had to be put off because an occurrence was about to fire, or that found
        the slot changing under it, is retried just after, not a whole period later: a deploy
        takes over within about one period.
        """
        while True:
            pause = self.watchdog * self._rng.uniform(0.8, 1.2)
            if self._deferred:
                pause = min(pause, max(self._deferred.values()) + 0.1)
                self._deferred.clear()
            await self._clock.sleep(pause)
            try:
                await self.maintain_all()
            except Exception:
                logger.exception("periodic watchdog round failed; trying again next round")

    async def maintain_all(self) -> None:
        for entry in self.entries.values():
            await self.maintain(entry)

    # -- offering ------------------------------------------------------------------------------

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

    async def offer(self, tick: Tick) -> bool:
        """Offer `tick` to its slot: True if the broker took it, False if the slot is full."""
        self.offers += 1
        try:
            await self._transport.publish(tick_envelope(tick, now=self._clock.time()))
        except PublishNacked:
            return False
        except MessageReturned:  # the slot was deleted (a schedule retired, then restored)
            await self._transport.declare_queue(slot_queue(self.app, tick.schedule))
            return await self.offer(tick)
        self.accepted += 1
        return True

    def guard(self, entry: Periodic) -> float:
        """How far ahead bootstrap and watchdog offers look: min(2 s, half a period).

        It must exceed the worst clock skew between pods, or a pod whose clock lags could
        offer the occurrence that is firing right now (a duplicate); and guard + lateness +
        handling must stay below the period, or an occurrence could be skipped. A 1 s schedule
        thus tolerates up to 0.5 s of skew (research/delays.md §3.9-i measured 0 duplicates
        and 0 skips with 300 ms of skew and a 500 ms guard).
        """
        first = entry.schedule.next_after(datetime.fromtimestamp(self._clock.time(), UTC))
        second = entry.schedule.next_after(first)
        return min(2.0, (second - first).total_seconds() / 2)

    async def maintain(self, entry: Periodic) -> None:
        """Make sure `entry` has a pending tick of the newest spec (bootstrap and watchdog)."""
        now = self._clock.time()
        guard = self.guard(entry)
        mine = self.tick_for(entry, now + guard)
        if await self.offer(mine):
            logger.debug("schedule %s: offered occurrence %d", entry.name, mine.occurrence_ms)
            return
        # The slot is full. Look at what it holds, but not when an occurrence is about to
        # fire: while we hold it, another pod's offer could take the slot for the occurrence
        # after, and the imminent one would be skipped.
        upcoming = self.tick_for(entry, now).occurrence_ms / 1000
        if upcoming - now < guard:
            self._deferred[entry.name] = upcoming - now + guard
            return
        await self._peek_and_settle(entry, mine)

    async def _peek_and_settle(self, entry: Periodic, mine: Tick) -> None:
        """Take the pending tick out and put back the one that should be pending.

        Never `reject(requeue=True)`: a requeued message bypasses `x-max-length`, and the slot
        could end up holding two ticks (measured).
        """
        delivery = await self._transport.get(mine_slot := slot_queue(self.app, entry.name).name)
        if delivery is None:
            self._deferred[entry.name] = RECHECK  # the tick is firing; its next one follows
            return
        try:
            pending = tick_from(delivery.body, delivery.properties)
        except MessageError:
            await self._transport.ack(delivery)  # garbage in a slot: replace it
            await self.offer(mine)
            return
        keep = pending if pending.kind == "lease" or not replaces(mine, pending) else mine
        await self._transport.ack(delivery)
        if not await self.offer(keep):
            logger.debug("schedule %s: slot %s refilled meanwhile", entry.name, mine_slot)
            self._deferred[entry.name] = RECHECK
        elif keep is mine:
            logger.warning(
                "schedule %s: replaced pending tick (generation %d, %s) with generation %d, %s",
                entry.name,
                pending.generation,
                pending.spec,
                mine.generation,
                mine.spec,
            )

    # -- firing --------------------------------------------------------------------------------

    async def on_tick(self, delivery: Delivery) -> None:
        """A tick expired: offer the next one, publish the task, ack."""
        try:
            tick = tick_from(delivery.body, delivery.properties)
        except MessageError as exc:
            logger.error("dropping a message that is not a tick from %s: %s", delivery.queue, exc)
            await self._transport.ack(delivery)
            return
        entry = self._entry_for(tick)
        if entry is None:
            logger.warning("schedule %s is no longer defined: retiring it", tick.schedule)
            await self._transport.ack(delivery)
            await self._transport.delete_queue(slot_queue(self.app, tick.schedule).name)
            return
        now = self._clock.time()
        if tick.kind == "lease":
            logger.warning(
                "schedule %s: the run of %d did not finish within its lease",
                tick.schedule,
                tick.occurrence_ms,
            )
            await self.offer(self.tick_for(entry, now))
            await self._transport.ack(delivery)
            return
        if entry.overlap:
            await self.offer(self.tick_for(entry, max(tick.occurrence_ms / 1000, now)))
        else:
            await self.offer(replace(tick, kind="lease", occurrence_ms=round((now + LEASE) * 1000)))
        late = now - tick.occurrence_ms / 1000
        if late > MISSED_AFTER and not entry.catch_up:
            logger.warning(
                "schedule %s: skipped occurrence %s, %.0fs late (missed while no worker ran)",
                tick.schedule,
                _iso(tick.occurrence_ms),
                late,
            )
            if not entry.overlap:
                await self.release(tick.schedule, tick.occurrence_ms)
        else:
            await self._publish_task(entry, tick)
        await self._transport.ack(delivery)

    async def _publish_task(self, entry: Periodic, tick: Tick) -> None:
        task_id = occurrence_task_id(self.app, tick.schedule, tick.occurrence_ms)
        message = Message(
            id=task_id,
            task=entry.task,
            args=entry.args,
            kwargs=dict(entry.kwargs),
            root_id=task_id,
            expires=(
                None
                if entry.expires is None
                else datetime.fromtimestamp(tick.occurrence_ms / 1000 + entry.expires, UTC)
            ),
            headers={PERIODIC_HEADER: [tick.schedule, tick.occurrence_ms]},
        )
        await self._publisher.send(entry.queue, message)
        logger.info(
            "schedule %s: occurrence %s -> task %s[%s]",
            tick.schedule,
            _iso(tick.occurrence_ms),
            entry.task,
            task_id,
        )

    def _entry_for(self, tick: Tick) -> Periodic | None:
        """Ours, or the tick's own description when a newer deploy defines it differently."""
        entry = self.entries.get(tick.schedule)
        if entry is not None and (
            tick.generation <= self.generation or tick.spec_hash == entry.schedule.spec_hash
        ):
            return entry
        if tick.generation <= self.generation:
            return None  # retired: no longer defined by this or any newer deploy
        return Periodic(
            name=tick.schedule,
            schedule=parse_canonical(tick.spec),
            task=tick.task,
            queue=tick.queue,
            args=tick.args,
            kwargs=tick.kwargs,
            overlap=entry.overlap if entry else True,
            generation=tick.generation,
        )

    async def release(self, schedule: str, occurrence_ms: int) -> None:
        """An `overlap=False` run finished: replace its lease with the next tick."""
        entry = self.entries.get(schedule)
        if entry is None:
            return
        delivery = await self._transport.get(slot_queue(self.app, schedule).name)
        next_tick = self.tick_for(entry, self._clock.time())
        if delivery is None:  # the lease expired already; its tick offers the next one
            return
        await self._transport.ack(delivery)
        try:
            pending = tick_from(delivery.body, delivery.properties)
        except MessageError:
            pending = None
        if pending is not None and pending.kind != "lease":
            await self.offer(pending)  # not ours to replace: put it back as it was
            return
        await self.offer(next_tick)


def _iso(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat()
