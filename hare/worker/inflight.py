"""The deliveries a worker holds unsettled: each handled in a task of its own, and the drain.

When a connection dies, aiormq cancels the tasks running its consumer callbacks, which would
cut a running task off at whatever `await` it was in. So the consumer callback (`handle`) hands
each delivery to a task of the worker's own: it runs to its end, its ack then fails and the
broker redelivers the message (at-least-once), but nothing is left half done. (This costs
~10 us less per delivery than `asyncio.shield`, measured.) The task is tracked from the start,
so a drain sees it even before it runs: the drain hands back the deliveries whose task has not
started and gives the others the drain timeout to finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hare.clock import Clock
from hare.core.envelope import Delivery
from hare.core.headers import PERIODIC_HEADER
from hare.core.priority import admission_ranks, consumed_queues, prefetch
from hare.errors import BrokerError
from hare.worker.admission import Slots

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.periodic.scheduler import Scheduler
    from hare.worker.parts import Parts

__all__ = ("InFlight",)

logger = logging.getLogger("hare.worker")


class InFlight:
    """The deliveries of one worker from their arrival until they are settled."""

    def __init__(self, app: Hare, clock: Clock, queues: Sequence[str], concurrency: int) -> None:
        self._app = app
        self._clock = clock
        bands = app.settings.bands
        self._concurrency, self._bands = concurrency, bands
        #: The queues the worker consumes: `queues` and, on quorum queues, each task queue's
        #: priority band (`hare.core.priority`; event handlers' queues get none).
        self.queues = consumed_queues(queues, bands, app.events)
        #: Each consumer may hold `concurrency` deliveries (a band twice that): with several,
        #: slots bound how many run. With one queue the prefetch alone bounds it (`None`).
        self._slots = Slots(concurrency) if len(self.queues) > 1 else None
        #: Which deliveries take a free slot first, by their queue: a high band's.
        self._ranks = admission_ranks(self.queues, bands)
        # Handler tasks of unsettled deliveries, and those whose task has started to run:
        # a drain hands back the ones that have not started and waits for the others.
        self._active: dict[asyncio.Task[Any], Delivery] = {}
        self._started: set[asyncio.Task[Any]] = set()
        self._handing_back = False

    def prefetch(self, queue: str) -> int:
        """The prefetch of the consumer of `queue` (`hare.core.priority.prefetch`)."""
        return prefetch(queue, self._concurrency, self._bands)

    def __len__(self) -> int:
        """Deliveries received and not yet settled."""
        return len(self._active)

    async def handle(self, parts: Parts, queue: str, delivery: Delivery) -> None:
        """The transport's entry point for a delivery: hand it to a task of the worker's own."""
        task = asyncio.get_running_loop().create_task(self._handle(parts, queue, delivery))
        self._active[task] = delivery
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._active.pop(task, None)
        self._started.discard(task)

    def mark_started(self) -> None:
        """The current delivery's task is about to run: a drain lets it finish."""
        current = asyncio.current_task()
        if current is not None:
            self._started.add(current)

    async def _handle(self, parts: Parts, queue: str, delivery: Delivery) -> None:
        """Decode, run and settle one delivery. Never raises."""
        try:
            slots = self._slots
            if slots is None:
                await self._process(parts, delivery)
            else:
                await slots.acquire(self._ranks.get(queue, 0))
                try:
                    await self._process(parts, delivery)
                finally:
                    slots.release()
        except asyncio.CancelledError:
            if self._handing_back:
                await parts.settlement.requeue(delivery)
            raise
        except BrokerError as exc:
            # Typically the connection died while the task ran: the broker redelivers it.
            logger.warning(
                "could not settle a delivery from %s (%s); the broker delivers it again (a "
                "task that ran here is not run again: its copy is settled by this outcome)",
                queue,
                exc,
            )
        except Exception:
            # A bug in hare: the delivery stays unacked and returns to its queue when the
            # channel closes. Never crash the consumer.
            logger.exception("could not settle a delivery from %s", queue)

    async def _process(self, parts: Parts, delivery: Delivery) -> None:
        message = await parts.processor.process(delivery)
        if message is None:
            return
        periodic = message.headers.get(PERIODIC_HEADER)
        if periodic is not None and parts.scheduler is not None:
            await self._release(parts.scheduler, periodic)

    async def _release(self, scheduler: Scheduler, periodic: object) -> None:
        """A run of a periodic task settled: an `overlap=False` schedule may go on."""
        if not (isinstance(periodic, list) and len(periodic) == 2):
            return
        name, occurrence = periodic
        entry = self._app.periodics.get(name) if isinstance(name, str) else None
        if entry is None or entry.overlap:
            return
        try:
            await scheduler.release(name, int(occurrence))
        except Exception:
            logger.exception(
                "schedule %s: could not offer the next tick after a run; the "
                "watchdog or the lease will",
                name,
            )

    async def drain(self, grace: float) -> None:
        """Hand back what has not started; let the rest finish within `grace` seconds, and
        hand back what is still running then (the consumers are cancelled already)."""
        self._handing_back = True
        waiting = [task for task in self._active if task not in self._started]
        for task in waiting:
            task.cancel()  # its handler rejects the delivery with requeue
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
            logger.warning("drain: handed back %d delivery(ies) that had not started", len(waiting))
        running = list(self._active)
        if not running:
            logger.info("drain: nothing running")
            return
        logger.warning("drain: waiting up to %.0fs for %d running task(s)", grace, len(running))
        deadline = asyncio.ensure_future(self._clock.sleep(grace))
        try:
            pending = set(running)
            while pending and not deadline.done():
                _, pending = await asyncio.wait(
                    pending | {deadline}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(deadline)
        finally:
            deadline.cancel()
        late = [task for task in running if not task.done()]
        for task in late:
            task.cancel()  # its handler requeues the delivery: the task did not finish
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        logger.warning(
            "drain: %d finished, %d still running after %.0fs requeued",
            len(running) - len(late),
            len(late),
            grace,
        )
