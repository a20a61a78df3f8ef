"""The worker's lifecycle: connect, subscribe, serve through reconnects, drain, stop.

`Worker.run` builds what the worker is made of (`hare.worker.parts`), consumes each queue
into `hare.worker.inflight` (a task of the worker's own per delivery, and the drain), and
leaves each delivery to `hare.worker.delivery` (admit, run, settle).

Invariants:

* A delivery is acked only after its task finished, or after a dead letter carrying it was
  confirmed by the broker, so a crash at any point leaves the message in the broker.
* Every consumer's prefetch is the worker's concurrency (a priority band's twice that, so a
  freed slot finds its next delivery here): what the broker counts as unacked is what runs
  and what waits for a free slot, never a hidden local buffer.
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
from hare.core.codec import accepted_content_types
from hare.errors import (
    BrokerNotReady,
    BrokerUnavailable,
    ConfigurationError,
    HareError,
)
from hare.events.emitting import declare_handlers
from hare.transport.base import Consumer, Transport
from hare.transport.reconnect import reconnect
from hare.worker.adoption import adopt
from hare.worker.delivery import Processor
from hare.worker.inflight import InFlight
from hare.worker.parts import Parts, start_pool
from hare.worker.patience import until_done
from hare.worker.prefork.config import PoolConfig
from hare.worker.prefork.pool import ProcessPool
from hare.worker.runner import TaskRunner

__all__ = ("Worker",)

logger = logging.getLogger("hare.worker")


class Worker:
    """Runs `app`'s tasks from `queues` (default: its default and event handler queues)."""

    def __init__(
        self,
        app: Hare,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        transport: Transport | None = None,
        rng: random.Random | None = None,
        drain_timeout: float = 30.0,
        schedules: bool = True,
        nodename: str | None = None,
        retry_on_startup: bool = True,
        pool: str = "threads",
        pool_start_method: str = "fork",
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        app_path: str | None = None,
    ) -> None:
        self.pool = PoolConfig.checked(  # how sync tasks run
            pool, pool_start_method, max_tasks_per_child, max_memory_per_child, app_path
        )
        self.concurrency = concurrency = self.pool.concurrency(concurrency)
        if drain_timeout < 0:
            raise ConfigurationError("drain_timeout must not be negative")
        self.drain_timeout = drain_timeout
        #: Wait for a broker not there yet at start (Celery's broker_connection_retry_on_startup).
        self.retry_on_startup = retry_on_startup
        #: Whether this worker keeps the app's periodic schedules going (by default all do).
        self.runs_schedules = schedules and bool(app.periodics)
        self.app = app
        self.queues = tuple(dict.fromkeys(queues or (app.settings.default_queue, *app.events)))
        self._transport = transport
        self._accept = accepted_content_types(app.settings.accept_content)
        self._clock = app.clock
        self._rng = rng or random.Random()
        self._in_flight = InFlight(app, self._clock, self.queues, concurrency)
        self._consumed = self._in_flight.queues
        #: What this worker is made of once it runs (`run` builds it).
        self._parts: Parts | None = None
        self._consumers: list[Consumer] = []
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
        self._restoring: asyncio.Future[None] | None = None
        #: This worker's name in `inspect` replies and in `request.hostname`.
        self.nodename = nodename or _default_nodename()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop()` is called, then drain and close."""
        signals.worker_init.send(sender=self)
        transport = self._transport or self.app.make_transport()
        # The children fork before the connection opens: they inherit none of it.
        pool = await start_pool(self.app, self.pool, self.concurrency, transport)
        try:
            await self._run(transport, pool)
        finally:
            if self.state != "stopped":  # it never started: a TLS failure, say
                self._set_state("stopped")
            if pool is not None:
                await pool.close()

    async def _run(self, transport: Transport, pool: ProcessPool | None) -> None:
        if not await self._connect(transport):
            self._set_state("stopped")  # stopped before the broker ever answered
            return
        transport.connection_lost.clear()  # from here on, a loss is this worker's to handle
        parts = self._parts = Parts.build(
            self.app,
            transport,
            queues=self.queues,
            concurrency=self.concurrency,
            nodename=self.nodename,
            accept=self._accept,
            rng=self._rng,
            self_counted=self._self_counted,
            on_start=self._in_flight.mark_started,
            schedules=self.runs_schedules,
            runner=TaskRunner(
                self.concurrency, self._clock, pool=pool, prefork=self.pool.kind == "prefork"
            ),
        )
        self.app.bind_loop(asyncio.get_running_loop(), parts.publisher)
        try:
            # Async tasks (and sync ones in threads) run in this process, so it is a "process
            # init" as Celery's prefork children are: per-process set-up goes here (and in
            # each prefork child, which sends it too).
            signals.worker_process_init.send(sender=self)
            await self.app.run_hooks("startup")
            try:
                await self._subscribe_patiently(transport, parts)
            except BrokerUnavailable as exc:  # `_serve` reconnects and subscribes again
                logger.warning("lost the connection while subscribing: %s", exc)
                transport.connection_lost.set()
            signals.worker_ready.send(sender=self)
            self.app.middleware.call("on_worker_start", self)
            logger.info(
                "worker ready: queues %s, %s pool, concurrency %d, tasks %s",
                ",".join(self.queues),
                self.pool.kind,
                self.concurrency,
                ", ".join(sorted(self.app.tasks)) or "(none)",
            )
            scheduler = parts.scheduler
            watchdog = asyncio.ensure_future(scheduler.run_watchdog()) if scheduler else None
            try:
                await self._serve(transport, parts)
            finally:
                if watchdog is not None:
                    watchdog.cancel()
            self._set_state("draining")
            signals.worker_shutting_down.send(
                sender=self.nodename, sig="SIGTERM", how="Warm", exitcode=0
            )
            await self._drain()
            await self.app.run_hooks("shutdown")
            self.app.middleware.call("on_worker_stop", self)
            signals.worker_shutdown.send(sender=self)
        finally:
            self._set_state("stopped")
            self.app.unbind_loop()
            await self._close(transport, parts)

    async def _connect(self, transport: Transport) -> bool:
        """Connect at start; False if `stop()` came first.

        With `retry_on_startup` (the default) a broker that does not answer yet is waited for
        with the reconnect backoff, each failed attempt logged with its cause, the worker live
        but not ready; without it the first failure raises `BrokerUnavailable`. A
        `BrokerTLSError` is raised at once either way: a configuration error, not a broker
        that is late.
        """
        if not self.retry_on_startup:
            await transport.connect()
            return True
        self.disconnected_since = self._clock.monotonic()
        try:
            back = reconnect(
                transport, clock=self._clock, rng=self._rng, what="worker start", log_every=1
            )
            return await self._first(back) is not None
        finally:
            self.disconnected_since = None

    async def _close(self, transport: Transport, parts: Parts) -> None:
        """Close remote control, the revocation stream and the connection; stop the threads."""
        if self._restoring is not None:
            self._restoring.cancel()
        for part in (parts.monitor, parts.control, parts.revocations):
            try:
                await part.close()
            except HareError as exc:
                logger.warning("could not close remote control cleanly: %s", exc)
        await transport.close()
        parts.runner.shutdown()

    async def _subscribe(self, transport: Transport, parts: Parts) -> None:
        """Declare the queues and consume them, revocations first: a task revoked before
        this worker started is known before any task arrives."""
        if self._restoring is None:  # first start: every earlier revoke before any task
            await parts.revocations.subscribe(transport)
            await parts.control.subscribe(transport)
            self._restoring = asyncio.get_running_loop().create_future()
            self._restoring.set_result(None)
        else:
            # After a reconnect the worker already knows what was revoked; tasks must not
            # wait on the stream (RabbitMQ may take a while to serve it after a restart).
            self._restoring.cancel()
            self._restoring = asyncio.ensure_future(self._restore_control(transport, parts))
        await declare_handlers(parts.publisher, self.app.events, self.app.settings)
        for queue in self._consumed:
            await adopt(
                parts.publisher, queue, self.app.settings, self._self_counted, self._adopted
            )
        for queue in self._consumed:
            handler = functools.partial(self._in_flight.handle, parts, queue)
            consumer = await transport.consume(
                queue, handler, prefetch=self._in_flight.prefetch(queue)
            )
            self._consumers.append(consumer)
        if parts.scheduler is not None:
            self._consumers.append(await parts.scheduler.subscribe())
        self.disconnected_since = None
        self._set_state("consuming")
        self._ready.set()

    async def _serve(self, transport: Transport, parts: Parts) -> None:
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
            # A TLS failure now is the broker's change (a certificate renewed wrongly), not
            # this worker's configuration, which worked: wait for it to be put right.
            back = reconnect(
                transport, clock=self._clock, rng=self._rng, what="worker", retry_tls=True
            )
            if await self._first(back) is None:
                return
            parts.publisher.forget_declarations()
            try:
                await self._subscribe_patiently(transport, parts)
            except BrokerUnavailable as exc:
                logger.warning("lost the connection again while subscribing: %s", exc)
                transport.connection_lost.set()
                continue
            lost_for = self._clock.monotonic() - lost_at
            logger.warning("consuming again after %.1fs without a connection", lost_for)

    async def _subscribe_patiently(self, transport: Transport, parts: Parts) -> None:
        """`_subscribe`, again after a pause while the broker is not ready for it (a cluster
        node catching up), until it works or the worker stops."""

        async def subscribe() -> None:
            self._consumers.clear()
            await self._subscribe(transport, parts)

        await until_done(
            "subscribing",
            subscribe,
            retry_on=(BrokerNotReady,),
            clock=self._clock,
            rng=self._rng,
            going=lambda: not self._stopping.is_set(),
        )

    async def _restore_control(self, transport: Transport, parts: Parts) -> None:
        """Re-subscribe revocations and the pidbox after a reconnect, retrying until done."""

        async def restore() -> None:
            await parts.revocations.subscribe(transport)
            await parts.control.subscribe(transport)
            logger.info("revocations and remote control restored after the reconnect")

        await until_done(
            "restoring revocations and remote control",
            restore,
            retry_on=(HareError,),
            clock=self._clock,
            rng=self._rng,
            going=lambda: not (self._stopping.is_set() or transport.connection_lost.is_set()),
        )

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
        return len(self._in_flight)

    async def _drain(self) -> None:
        """Stop consuming; hand back what has not started; let the rest finish in time."""
        for consumer in self._consumers:
            try:
                await consumer.cancel()
            except HareError as exc:  # a dead connection delivers nothing more anyway
                logger.warning("could not cancel the consumer of %s: %s", consumer.queue, exc)
        await self._in_flight.drain(self.drain_timeout)

    @property
    def revocations(self) -> Revocations | None:
        """The revocations this worker honours, once it runs."""
        return None if self._parts is None else self._parts.revocations

    @property
    def busy_threads(self) -> int:
        """Sync tasks still running in threads (including any past their hard time limit)."""
        return 0 if self._parts is None else self._parts.runner.busy_threads

    @property
    def processed(self) -> int:
        """Tasks this worker ran (whatever their outcome)."""
        return 0 if self._parts is None else self._parts.processor.processed

    def _processor_of(self) -> Processor:
        if self._parts is None:
            raise RuntimeError("the worker is not running")
        return self._parts.processor


_workers_started = itertools.count()


def _default_nodename() -> str:
    """`hare.<pid>@<host>`, unique among the workers of this process (tests run several)."""
    n = next(_workers_started)
    suffix = f"-{n}" if n else ""
    return f"hare.{os.getpid()}{suffix}@{socket.gethostname()}"
