"""Periodic tasks without a beat process: the broker picks the worker that runs the schedules.

See `hare.periodic.ticks` for the queues, `hare.periodic.election` for how the broker picks one
worker (the leader), and `hare.periodic.slots` for how the leader keeps one tick per schedule.
Every worker consumes the tick queue and takes part; only the leader offers ticks, at start
and then on a watchdog timer. When a tick expires it reaches the leader, which offers the next
tick, acks, then publishes the task (its id derived from schedule and occurrence).

In that order, a leader that dies at any point never makes an occurrence run twice: before the
ack the next leader gets the tick back and fires it (the slot already holds its successor, so
no second successor goes in); after the ack the occurrence is lost, the one case where a
leader's death costs a run. A second tick for an occurrence this worker fired (a dead leader's
offer landing late) is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from hare.clock import Clock
from hare.core.envelope import Delivery
from hare.core.headers import PERIODIC_HEADER
from hare.core.message import Message
from hare.errors import MessageError
from hare.periodic.election import Election, NotLeading
from hare.periodic.schedules import Periodic, parse_canonical
from hare.periodic.slots import Slots
from hare.periodic.ticks import (
    Release,
    Tick,
    kind_of,
    occurrence_task_id,
    release_envelope,
    release_from,
    slot_name,
    tick_from,
    tick_queue,
)
from hare.periodic.upgrade import Upgrade
from hare.publisher import Publisher
from hare.transport.base import Consumer, Transport

__all__ = ("Scheduler",)

logger = logging.getLogger("hare.periodic")

#: A tick this late (all workers were down) is a missed occurrence: skipped unless catch_up.
MISSED_AFTER = 60.0
#: How long an `overlap=False` run holds its schedule before the next occurrence may start
#: anyway (a run whose worker died must not stop the schedule for good).
LEASE = 3600.0


class Scheduler:
    """This worker's part in keeping the app's schedules: it leads them or stands by."""

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
        self.election = Election(
            app_name,
            self._transport,
            generation=generation,
            on_delivery=self._on_delivery,
            on_lead=self._on_lead,
        )
        self.slots = Slots(app_name, self._transport, clock, self.election, generation=generation)
        self.upgrade = Upgrade(app_name, self._transport, clock, self.entries)
        #: The last occurrence this worker fired, per schedule: a tick for one up to it is a
        #: duplicate (or stale) and is dropped.
        self.fired: dict[str, int] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    # -- life cycle ----------------------------------------------------------------------------

    async def subscribe(self) -> Consumer:
        """Declare the tick queue and the slots, and take part in the election."""
        await self._transport.declare_queue(tick_queue(self.app))
        for name in self.entries:
            await self.slots.declare(name)
        return await self.election.subscribe()

    async def run_watchdog(self) -> None:
        """Every `watchdog` seconds (jittered by ±20%): keep the lead, and if this worker
        leads, offer every schedule's tick again.

        A check put off because an occurrence was about to fire, or that found the slot
        changing under it, is retried just after, not a whole period later: a deploy takes
        over within about one period.
        """
        while True:
            pause = self.watchdog * self._rng.uniform(0.8, 1.2)
            await self._clock.sleep(min(pause, self._soon() or pause))
            try:
                epoch = await self.election.round()
                if epoch is not None:
                    await self.lead(epoch)
            except NotLeading:
                pass  # the next leader's bootstrap does it
            except Exception:
                logger.exception("periodic watchdog round failed; trying again next round")

    async def lead(self, epoch: int) -> None:
        """Offer every schedule's tick, unless periodic v1 workers still run them."""
        if await self.upgrade.allows():
            for entry in self.entries.values():
                await self.slots.maintain(entry, epoch)

    def _on_lead(self, epoch: int) -> None:
        self.slots.forget()
        task = asyncio.ensure_future(self._bootstrap(epoch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bootstrap(self, epoch: int) -> None:
        """Offer every tick on taking the lead; look again soon at what had to be put off."""
        while self.election.leads(epoch):
            try:
                await self.lead(epoch)
            except NotLeading:
                return
            except Exception:
                logger.exception("periodic bootstrap failed; the watchdog tries again")
                return
            soon = self._soon()
            if soon is None:
                return
            await self._clock.sleep(soon)

    def _soon(self) -> float | None:
        """How soon to look again at the checks put off (`None`: none was)."""
        soon = list(self.slots.deferred.values())
        if self.upgrade.recheck is not None:
            soon.append(self.upgrade.recheck)
        self.slots.deferred.clear()
        return max(soon) + 0.1 if soon else None

    async def release(self, schedule: str, occurrence_ms: int) -> None:
        """An `overlap=False` run finished (on any worker): ask the leader for the next tick."""
        if schedule not in self.entries:
            return
        release = Release(app=self.app, schedule=schedule, occurrence_ms=occurrence_ms)
        await self._publisher.publish(release_envelope(release), what=f"release of {schedule}")

    # -- the leader's deliveries ---------------------------------------------------------------

    async def _on_delivery(self, delivery: Delivery, epoch: int) -> None:
        kind = kind_of(delivery.properties)
        try:
            if kind in ("tick", "lease"):
                await self.on_tick(delivery, epoch)
            elif kind == "release":
                await self._on_release(delivery, epoch)
            else:
                logger.error("dropping a %r message from %s", kind, delivery.queue)
                await self._transport.ack(delivery)
        except NotLeading:
            logger.info("lost the lead while handling a %s; the next leader handles it", kind)

    async def on_tick(self, delivery: Delivery, epoch: int) -> None:
        """A tick expired: offer the next one, ack, publish the task."""
        try:
            tick = tick_from(delivery.body, delivery.properties)
        except MessageError as exc:
            logger.error("dropping a message that is not a tick from %s: %s", delivery.queue, exc)
            await self._transport.ack(delivery)
            return
        if not await self.upgrade.allows():
            await self._transport.ack(delivery)  # v1 workers fire the schedules
            return
        entry = self._entry_for(tick)
        if entry is None:
            logger.warning("schedule %s is no longer defined: retiring it", tick.schedule)
            await self._transport.ack(delivery)
            await self._transport.delete_queue(slot_name(self.app, tick.schedule))
            return
        now = self._clock.time()
        before = self.fired.get(tick.schedule)
        duplicate = tick.kind == "tick" and before is not None and tick.occurrence_ms <= before
        if tick.kind == "tick" and not duplicate:  # claimed: a copy arriving now is a duplicate
            self.fired[tick.schedule] = tick.occurrence_ms
        try:
            async with self.slots.lock(tick.schedule):
                await self.slots.offer(self._successor(entry, tick, now, duplicate), epoch)
            await self._transport.ack(delivery)
        except BaseException:
            if tick.kind == "tick" and not duplicate:  # not acked: it comes back, fired then
                self._unclaim(tick, before)
            raise
        if duplicate:
            logger.warning(
                "schedule %s: dropped a second tick for %s", tick.schedule, _iso(tick.occurrence_ms)
            )
            return
        await self._fire(entry, tick, now, epoch)

    def _unclaim(self, tick: Tick, before: int | None) -> None:
        if before is None:
            self.fired.pop(tick.schedule, None)
        else:
            self.fired[tick.schedule] = before

    def _successor(self, entry: Periodic, tick: Tick, now: float, duplicate: bool) -> Tick:
        """The tick to offer after `tick` (into an empty slot only: a copy's successor is
        normally there already)."""
        if tick.kind == "lease":
            return self.slots.tick_for(entry, now)
        if entry.overlap or duplicate:  # a duplicate starts no run: no lease for it
            return self.slots.tick_for(entry, max(tick.occurrence_ms / 1000, now))
        # The run's placeholder: the slot stays full until the run releases it.
        return replace(tick, kind="lease", occurrence_ms=round((now + LEASE) * 1000))

    async def _fire(self, entry: Periodic, tick: Tick, now: float, epoch: int) -> None:
        if tick.kind == "lease":
            logger.warning(
                "schedule %s: the run of %d did not finish within its lease",
                tick.schedule,
                tick.occurrence_ms,
            )
            return
        late = now - tick.occurrence_ms / 1000
        if late > MISSED_AFTER and not entry.catch_up:
            logger.warning(
                "schedule %s: skipped occurrence %s, %.0fs late (missed while no worker ran)",
                tick.schedule,
                _iso(tick.occurrence_ms),
                late,
            )
            if not entry.overlap:
                await self.slots.release(entry, epoch)
            return
        try:
            await self._publish_task(entry, tick, epoch)
        except NotLeading:
            logger.warning(
                "schedule %s: occurrence %s not published: this worker lost the lead while "
                "firing it (the tick was acked: this one occurrence is missed)",
                tick.schedule,
                _iso(tick.occurrence_ms),
            )

    async def _publish_task(self, entry: Periodic, tick: Tick, epoch: int) -> None:
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
        # Never again after a reconnect: the lead (and the tick) went with the connection.
        await self._publisher.send(entry.queue, message, guard=lambda: self.election.check(epoch))
        logger.info(
            "schedule %s: occurrence %s -> task %s[%s]",
            tick.schedule,
            _iso(tick.occurrence_ms),
            entry.task,
            task_id,
        )

    async def _on_release(self, delivery: Delivery, epoch: int) -> None:
        try:
            release = release_from(delivery.properties)
        except MessageError as exc:
            logger.error("dropping a malformed release from %s: %s", delivery.queue, exc)
            await self._transport.ack(delivery)
            return
        entry = self.entries.get(release.schedule)
        if entry is not None and not entry.overlap and await self.upgrade.allows():
            await self.slots.release(entry, epoch)
        await self._transport.ack(delivery)

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


def _iso(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat()
