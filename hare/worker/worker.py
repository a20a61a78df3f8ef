"""The worker: consume task messages, run them, settle each delivery by its outcome.

Invariants:

* A delivery is acked only after its task finished, or after a dead letter carrying it was
  confirmed by the broker, so a crash at any point leaves the message in the broker.
* Every consumer's prefetch equals the worker's concurrency: what the broker counts as unacked
  is what is running (plus, with several queues, what waits for a free slot), never a hidden
  local buffer.
* Nothing a message contains can crash the worker: whatever cannot run is dead-lettered with
  its reason.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import random
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from hare import signals
from hare.app import Hare
from hare.control.revocation_stream import Revocations
from hare.control.server import ControlServer
from hare.core.codec import accepted_content_types
from hare.core.envelope import Delivery
from hare.core.headers import PERIODIC_HEADER
from hare.core.settings import mask_url
from hare.core.topology import DEAD_SUFFIX
from hare.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    HareError,
    NotSupportedError,
)
from hare.periodic.scheduler import Scheduler
from hare.publisher import Publisher
from hare.transport.base import Consumer, Transport
from hare.transport.reconnect import backoff_delay, reconnect
from hare.worker.delivery import Processor
from hare.worker.followups import FollowUps
from hare.worker.recording import Recorder
from hare.worker.runner import TaskRunner
from hare.worker.running import RunningTasks
from hare.worker.settlement import Settlement
from hare.worker.view import WorkerView

__all__ = ("Worker",)

logger = logging.getLogger("hare.worker")


class Worker:
    """Runs the tasks of `app` that arrive on `queues`, `concurrency` at a time."""

    def __init__(
        self,
        app: Hare,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int = 16,
        transport: Transport | None = None,
        rng: random.Random | None = None,
        drain_timeout: float = 30.0,
        schedules: bool = True,
        nodename: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if drain_timeout < 0:
            raise ConfigurationError("drain_timeout must not be negative")
        self.drain_timeout = drain_timeout
        #: Whether this worker keeps the app's periodic schedules going (all workers do, by
        #: default: no process is special).
        self.runs_schedules = schedules and bool(app.periodics)
        self._scheduler: Scheduler | None = None
        self.app = app
        self.queues = tuple(dict.fromkeys(queues or (app.settings.default_queue,)))
        self.concurrency = concurrency
        self._transport = transport
        self._accept = accepted_content_types(app.settings.accept_content)
        self._clock = app.clock
        self._rng = rng or random.Random()
        # With several queues each consumer may hold `concurrency` deliveries; this bounds
        # how many run. With one queue the prefetch alone bounds it.
        self._slots: asyncio.Semaphore | None = None
        self._runner: TaskRunner | None = None
        self._settlement: Settlement | None = None
        self._consumers: list[Consumer] = []
        # Handler tasks of unsettled deliveries, and those whose task has started to run:
        # a drain hands back the ones that have not started and waits for the others.
        self._active: dict[asyncio.Task[Any], Delivery] = {}
        self._started: set[asyncio.Task[Any]] = set()
        self._handing_back = False
        #: starting, consuming, reconnecting, draining or stopped: for health probes.
        self.state = "starting"
        #: Called with the worker after every change of `state`.
        self.on_state_change: list[Callable[[Worker], None]] = []
        #: Monotonic time the connection was lost, while reconnecting.
        self.disconnected_since: float | None = None
        # Quorum queues hare declared count deliveries themselves (x-delivery-limit); classic
        # ones only say "redelivered", so the worker keeps the count in a header of its own,
        # and so it does for a queue it consumes as another client declared it.
        classic = app.settings.queue_type == "classic"
        self._self_counted: set[str] = set(self.queues) if classic else set()
        # Queues found declared otherwise than hare would: warned about once.
        self._adopted: set[str] = set()
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._processor: Processor | None = None
        self.revocations: Revocations | None = None
        self._control: ControlServer | None = None
        self._restoring: asyncio.Future[None] | None = None
        #: This worker's name in `inspect` replies and in `request.hostname`.
        self.nodename = nodename or _default_nodename()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop()` is called, then drain and close."""
        signals.worker_init.send(sender=self)
        transport = self._transport or self.app.make_transport()
        await transport.connect()
        transport.connection_lost.clear()  # from here on, a loss is this worker's to handle
        app_settings = self.app.settings
        publisher = Publisher(transport, app_settings, self._clock)
        self._settlement = Settlement(publisher, self._clock, app_settings.delivery_limit)
        self._runner = TaskRunner(self.concurrency, self._clock)
        running = RunningTasks()
        self.revocations = Revocations(clock=self._clock, terminate=running.terminate)
        self._processor = Processor(
            self.app,
            self._settlement,
            self._runner,
            Recorder(self.app, FollowUps(self.app, publisher, self._clock), self._clock),
            clock=self._clock,
            rng=self._rng,
            nodename=self.nodename,
            accept=self._accept,
            self_counted=self._self_counted,
            on_start=self._mark_started,
            running=running,
            is_revoked=self.revocations.is_revoked,
            is_revoked_by_stamps=self.revocations.is_revoked_by_stamps,
        )
        view = WorkerView(
            self._processor,
            queues=self.queues,
            concurrency=self.concurrency,
            broker=mask_url(app_settings.broker_url),
        )
        self._control = ControlServer(
            view,
            self.revocations,
            nodename=self.nodename,
            clock=self._clock,
            commands=self.app.control_commands,
            app=self.app,
        )
        if self.runs_schedules:
            self._scheduler = Scheduler(
                self.app.main or "app",
                self.app.periodics,
                publisher,
                clock=self._clock,
                rng=self._rng,
                generation=app_settings.generation,
                watchdog=app_settings.watchdog_interval,
            )
        if len(self.queues) > 1:
            self._slots = asyncio.Semaphore(self.concurrency)
        self.app.bind_loop(asyncio.get_running_loop(), publisher)
        try:
            # Tasks run in this process (threads), so it is also the "process init" of Celery's
            # prefork children: per-process set-up (DB engines, SDK clients) goes here.
            signals.worker_process_init.send(sender=self)
            await self.app.run_hooks("startup")
            await self._subscribe(transport, publisher)
            signals.worker_ready.send(sender=self)
            logger.info(
                "worker ready: queues %s, concurrency %d, tasks %s",
                ",".join(self.queues),
                self.concurrency,
                ", ".join(sorted(self.app.tasks)) or "(none)",
            )
            watchdog = (
                asyncio.ensure_future(self._scheduler.run_watchdog()) if self._scheduler else None
            )
            try:
                await self._serve(transport, publisher)
            finally:
                if watchdog is not None:
                    watchdog.cancel()
            self._set_state("draining")
            signals.worker_shutting_down.send(
                sender=self.nodename, sig="SIGTERM", how="Warm", exitcode=0
            )
            await self._drain()
            await self.app.run_hooks("shutdown")
            signals.worker_shutdown.send(sender=self)
        finally:
            self._set_state("stopped")
            self.app.unbind_loop()
            if self._restoring is not None:
                self._restoring.cancel()
            for part in (self._control, self.revocations):
                if part is not None:
                    try:
                        await part.close()
                    except HareError as exc:
                        logger.warning("could not close remote control cleanly: %s", exc)
            await transport.close()
            self._runner.shutdown()

    async def _subscribe(self, transport: Transport, publisher: Publisher) -> None:
        """Declare the queues and consume them, revocations first: a task revoked before
        this worker started is known before any task arrives."""
        if self.revocations is not None and self._control is not None:
            if self._restoring is None:  # first start: every earlier revoke before any task
                await self.revocations.subscribe(transport)
                await self._control.subscribe(transport)
                self._restoring = asyncio.get_running_loop().create_future()
                self._restoring.set_result(None)
            else:
                # After a reconnect the worker already knows what was revoked; tasks must not
                # wait on the stream (RabbitMQ may take a while to serve it after a restart).
                self._restoring.cancel()
                self._restoring = asyncio.ensure_future(self._restore_control(transport))
        for queue in self.queues:
            await self._adopt(publisher, queue)
        for queue in self.queues:
            handler = functools.partial(self._handle, queue)
            consumer = await transport.consume(queue, handler, prefetch=self.concurrency)
            self._consumers.append(consumer)
        if self._scheduler is not None:
            self._consumers.append(await self._scheduler.subscribe())
        self.disconnected_since = None
        self._set_state("consuming")
        self._ready.set()

    async def _adopt(self, publisher: Publisher, queue: str) -> None:
        """Make sure `queue` exists; consume one that another client declared as it is."""
        difference = await publisher.adopt_queue(queue)
        if difference is None:
            return
        if "stream" in difference and "x-queue-type" in difference:
            raise NotSupportedError(
                f"consuming stream {queue!r} as a work queue",
                "a stream cannot requeue or dead-letter a message; consume a classic or "
                "quorum queue",
            )
        self._self_counted.add(queue)
        if queue in self._adopted:
            return
        self._adopted.add(queue)
        logger.warning(
            "queue %r exists with other arguments than hare's (%s): consuming it as it is. "
            "hare's broker-side settings (queue type %s, delivery limit, dead-lettering by "
            "the broker) do not apply to it: the worker counts redeliveries itself (a message "
            "its worker went away from %d times is dead-lettered) and dead-letters into %r.",
            queue,
            difference,
            self.app.settings.queue_type,
            self.app.settings.delivery_limit,
            queue + DEAD_SUFFIX,
        )

    async def _serve(self, transport: Transport, publisher: Publisher) -> None:
        """Consume until `stop()`; through lost connections, reconnect and consume again."""
        while not self._stopping.is_set():
            if await self._first(transport.connection_lost.wait()) is None:
                return  # stop() was called
            # Cleared before reconnecting: a loss during the reconnect or the re-subscribe
            # sets it again and is handled on the next turn, never missed.
            transport.connection_lost.clear()
            self._ready.clear()
            self._consumers.clear()
            lost_at = self.disconnected_since = self._clock.monotonic()
            self._set_state("reconnecting")
            logger.warning(
                "lost the broker connection; %d unsettled delivery(ies) will be redelivered",
                self.in_flight,
            )
            back = reconnect(transport, clock=self._clock, rng=self._rng, what="worker")
            if await self._first(back) is None:
                return
            publisher.forget_declarations()
            try:
                await self._subscribe(transport, publisher)
            except BrokerUnavailable as exc:
                logger.warning("lost the connection again while subscribing: %s", exc)
                transport.connection_lost.set()
                continue
            lost_for = self._clock.monotonic() - lost_at
            logger.warning("consuming again after %.1fs without a connection", lost_for)

    async def _restore_control(self, transport: Transport) -> None:
        """Re-subscribe revocations and the pidbox after a reconnect, retrying until done."""
        assert self.revocations is not None and self._control is not None
        attempt = 0
        while not self._stopping.is_set() and not transport.connection_lost.is_set():
            try:
                await self.revocations.subscribe(transport)
                await self._control.subscribe(transport)
                logger.info("revocations and remote control restored after the reconnect")
                return
            except HareError as exc:
                delay = backoff_delay(attempt, self._rng)
                logger.warning(
                    "revocations/remote control not restored yet (%s); again in %.1fs", exc, delay
                )
                attempt += 1
                await self._clock.sleep(delay)

    async def _first(self, work: Coroutine[Any, Any, Any]) -> bool | None:
        """Run `work` until it finishes (True) or `stop()` is called first (None)."""
        job = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({job, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
        if not job.done() or job.cancelled():
            return None
        job.result()
        return True

    async def _release(self, periodic: object) -> None:
        """A run of a periodic task settled: an `overlap=False` schedule may go on."""
        if not (isinstance(periodic, list) and len(periodic) == 2):
            return
        name, occurrence = periodic
        entry = self.app.periodics.get(name) if isinstance(name, str) else None
        if entry is None or entry.overlap or self._scheduler is None:
            return
        try:
            await self._scheduler.release(name, int(occurrence))
        except Exception:
            logger.exception(
                "schedule %s: could not offer the next tick after a run; the "
                "watchdog or the lease will",
                name,
            )

    def _set_state(self, state: str) -> None:
        self.state = state
        for listener in self.on_state_change:
            try:
                listener(self)
            except Exception:
                logger.exception("a state-change listener failed")

    async def wait_ready(self) -> None:
        """Wait until the worker consumes every queue."""
        await self._ready.wait()

    def stop(self) -> None:
        """Ask the worker to stop consuming, finish what runs, and return from `run()`."""
        self._stopping.set()

    @property
    def in_flight(self) -> int:
        """Deliveries received and not yet settled."""
        return len(self._active)

    async def _drain(self) -> None:
        """Stop consuming; hand back what has not started; let the rest finish in time."""
        for consumer in self._consumers:
            try:
                await consumer.cancel()
            except HareError as exc:  # a dead connection delivers nothing more anyway
                logger.warning("could not cancel the consumer of %s: %s", consumer.queue, exc)
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
        logger.warning(
            "drain: waiting up to %.0fs for %d running task(s)", self.drain_timeout, len(running)
        )
        deadline = asyncio.ensure_future(self._clock.sleep(self.drain_timeout))
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
            self.drain_timeout,
        )

    # -- one delivery ------------------------------------------------------------------------

    async def _handle(self, queue: str, delivery: Delivery) -> None:
        """The transport's entry point for a delivery: hand it to a task of the worker's own.

        When a connection dies, aiormq cancels the tasks running its consumer callbacks,
        which would cut a running task off at whatever `await` it was in. The worker's own
        task is not among them: it runs to its end, its ack then fails and the broker
        redelivers the message (at-least-once), but nothing is left half done. (This costs
        ~10 us less per delivery than `asyncio.shield`, measured.) The task is in `_active`
        from the start, so a drain sees it even before it runs.
        """
        task = asyncio.get_running_loop().create_task(self._handle_delivery(queue, delivery))
        self._active[task] = delivery
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._active.pop(task, None)
        self._started.discard(task)

    async def _handle_delivery(self, queue: str, delivery: Delivery) -> None:
        """Decode, run and settle one delivery. Never raises."""
        try:
            if self._slots is None:
                await self._process(delivery)
            else:
                async with self._slots:
                    await self._process(delivery)
        except asyncio.CancelledError:
            if self._handing_back:
                await self._settlement_of().requeue(delivery)
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

    async def _process(self, delivery: Delivery) -> None:
        message = await self._processor_of().process(delivery)
        if message is None:
            return
        periodic = message.headers.get(PERIODIC_HEADER)
        if periodic is not None and self._scheduler is not None:
            await self._release(periodic)

    def _mark_started(self) -> None:
        current = asyncio.current_task()
        if current is not None:
            self._started.add(current)

    @property
    def busy_threads(self) -> int:
        """Sync tasks still running in threads (including any past their hard time limit)."""
        return 0 if self._runner is None else self._runner.busy_threads

    @property
    def processed(self) -> int:
        """Tasks this worker ran (whatever their outcome)."""
        return 0 if self._processor is None else self._processor.processed

    def _processor_of(self) -> Processor:
        if self._processor is None:
            raise RuntimeError("the worker is not running")
        return self._processor

    def _settlement_of(self) -> Settlement:
        if self._settlement is None:
            raise RuntimeError("the worker is not running")
        return self._settlement


_workers_started = itertools.count()


def _default_nodename() -> str:
    """`hare.<pid>@<host>`, unique among the workers of this process (tests run several)."""
    n = next(_workers_started)
    suffix = f"-{n}" if n else ""
    return f"hare.{os.getpid()}{suffix}@{socket.gethostname()}"
