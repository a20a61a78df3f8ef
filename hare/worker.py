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
import logging
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hare import protocol
from hare.app import Hare
from hare.codec import accepted_content_types
from hare.deadletter import DEATH_HEADERS, DeadLetter, dead_letter_envelope, strip_death_headers
from hare.errors import ConfigurationError, DelayTooLong, MessageError
from hare.execution import TaskRunner
from hare.message import Message
from hare.outcome import Failed, Outcome, Rejected, RetryRequested
from hare.publisher import ETA_HEADER, Publisher
from hare.retry import Ack, DeadLetterAs, RetryAt, RetryIn, decide
from hare.task import Task
from hare.transport.base import Consumer, Delivery, Transport

__all__ = ("Worker",)

logger = logging.getLogger("hare.worker")

#: A message due further ahead than this goes back through the delay ladder instead of
#: waiting in the worker (a producer's clock ahead of ours, a Celery producer that put an ETA
#: straight on the queue). Anything closer is waited out here, so a worker never holds a
#: delayed message for much longer than one ladder unit in normal operation.
EARLY_TOLERANCE = 1.0


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
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if drain_timeout < 0:
            raise ConfigurationError("drain_timeout must not be negative")
        self.drain_timeout = drain_timeout
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
        self._publisher: Publisher | None = None
        self._consumers: list[Consumer] = []
        # Handler tasks of unsettled deliveries, and those whose task has started to run:
        # a drain hands back the ones that have not started and waits for the others.
        self._active: dict[asyncio.Task[Any], Delivery] = {}
        self._started: set[asyncio.Task[Any]] = set()
        self._handing_back = False
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self.processed = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop()` is called, then drain and close."""
        transport = self._transport or self.app.make_transport()
        await transport.connect()
        publisher = Publisher(transport, self.app.settings, self._clock)
        self._publisher = publisher
        self._runner = TaskRunner(self.concurrency, self._clock)
        if len(self.queues) > 1:
            self._slots = asyncio.Semaphore(self.concurrency)
        self.app.bind_loop(asyncio.get_running_loop(), publisher)
        try:
            await self.app.run_hooks("startup")
            for queue in self.queues:
                await publisher.ensure_queue(queue)
            for queue in self.queues:
                handler = functools.partial(self._handle, queue)
                consumer = await transport.consume(queue, handler, prefetch=self.concurrency)
                self._consumers.append(consumer)
            logger.info(
                "worker ready: queues %s, concurrency %d, tasks %s",
                ",".join(self.queues),
                self.concurrency,
                ", ".join(sorted(self.app.tasks)) or "(none)",
            )
            self._ready.set()
            await self._stopping.wait()
            await self._drain()
            await self.app.run_hooks("shutdown")
        finally:
            self.app.unbind_loop()
            await transport.close()
            self._runner.shutdown()

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
            await consumer.cancel()
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
        """Decode, run and settle one delivery. Never raises into the transport."""
        current = asyncio.current_task()
        if current is not None:
            self._active[current] = delivery
        try:
            if self._slots is None:
                await self._process(delivery)
            else:
                async with self._slots:
                    await self._process(delivery)
        except asyncio.CancelledError:
            if self._handing_back:
                await self._requeue(delivery)
            raise
        except Exception:
            # A bug in hare or a broker failure while settling: the delivery stays unacked
            # and returns to its queue when the channel closes. Never crash the consumer.
            logger.exception("could not settle a delivery from %s", queue)
        finally:
            if current is not None:
                self._active.pop(current, None)
                self._started.discard(current)

    async def _process(self, delivery: Delivery) -> None:
        try:
            message = protocol.decode(delivery.body, delivery.properties, accept=self._accept)
        except MessageError as exc:
            await self._dead_letter(delivery, DeadLetter(reason=exc.reason, detail=str(exc)))
            return
        if not DEATH_HEADERS.isdisjoint(message.headers):
            message = replace(message, headers=strip_death_headers(message.headers))
        task = self.app.tasks.get(message.task)
        if task is None:
            detail = f"no task named {message.task!r} is registered on this worker"
            await self._dead_letter(delivery, DeadLetter(reason="unknown-task", detail=detail))
            return
        now = self._clock.time()
        if message.expires is not None and message.expires.timestamp() <= now:
            logger.warning(
                "task %s[%s] expired at %s: discarded",
                task.name,
                message.id,
                message.expires.isoformat(),
            )
            await self._transport_of().ack(delivery)
            return
        due = _due(message)
        if due is not None and due > now:
            if due - now > EARLY_TOLERANCE:
                await self._redelay(delivery, task, message, due - now)
                return
            await self._clock.sleep(due - now)
        current = asyncio.current_task()
        if current is not None:
            self._started.add(current)
        started = self._clock.monotonic()
        outcome = await self._execute(task, message)
        await self._settle(delivery, task, message, outcome, self._clock.monotonic() - started)

    async def _redelay(
        self, delivery: Delivery, task: Task[Any, Any], message: Message, early: float
    ) -> None:
        """Send an early message back through the ladder (confirmed), then ack it."""
        try:
            await self._publisher_of().send(delivery.queue, message)
        except DelayTooLong as exc:
            await self._dead_letter(delivery, DeadLetter(reason="bad-eta", detail=str(exc)))
            return
        await self._transport_of().ack(delivery)
        logger.info(
            "task %s[%s] arrived %.1fs early: back through the delay ladder",
            task.name,
            message.id,
            early,
        )

    async def _execute(self, task: Task[Any, Any], message: Message) -> Outcome:
        hard, soft = message.timelimit
        options = task.options
        return await self._runner_of().run(
            task.fn,
            message.args,
            dict(message.kwargs),
            is_async=task.is_async,
            soft=soft if soft is not None else options.soft_time_limit,
            hard=hard if hard is not None else options.time_limit,
        )

    async def _settle(
        self,
        delivery: Delivery,
        task: Task[Any, Any],
        message: Message,
        outcome: Outcome,
        runtime: float,
    ) -> None:
        decision = decide(outcome, task.options.retry, message.retries, self._rng)
        self.processed += 1
        if isinstance(decision, Ack):
            await self._transport_of().ack(delivery)
            if logger.isEnabledFor(logging.INFO):
                logger.info("task %s[%s] succeeded in %.3fs", task.name, message.id, runtime)
            return
        if isinstance(decision, RetryIn | RetryAt):
            await self._retry(delivery, task, message, outcome, decision)
            return
        dead = _dead_letter_for(decision, outcome, attempts=message.retries + 1)
        logger.error("task %s[%s] %s: %s", task.name, message.id, dead.reason, dead.detail)
        await self._dead_letter(delivery, dead)

    async def _retry(
        self,
        delivery: Delivery,
        task: Task[Any, Any],
        message: Message,
        outcome: Outcome,
        decision: RetryIn | RetryAt,
    ) -> None:
        """Publish the next attempt through the ladder (confirmed), then ack this one.

        Celery's semantics: same task id, `retries + 1`, `parent_id` = the task's own id. A
        crash between the publish and the ack runs one attempt twice, never loses one.
        """
        if isinstance(decision, RetryIn):
            eta = datetime.fromtimestamp(self._clock.time() + decision.seconds, UTC)
        else:
            eta = decision.eta
        headers = {k: v for k, v in message.headers.items() if k != ETA_HEADER}
        again = replace(
            message, retries=message.retries + 1, eta=eta, parent_id=message.id, headers=headers
        )
        try:
            await self._publisher_of().send(delivery.queue, again)
        except DelayTooLong as exc:
            dead = _dead_letter_for(DeadLetterAs("retry-too-far"), outcome, message.retries + 1)
            await self._dead_letter(delivery, replace(dead, detail=str(exc)))
            return
        await self._transport_of().ack(delivery)
        cause = outcome.exception if isinstance(outcome, Failed | RetryRequested) else None
        logger.warning(
            "task %s[%s] retry %d at %s%s",
            task.name,
            message.id,
            again.retries,
            eta.isoformat(),
            f": {cause!r}" if cause is not None else "",
        )

    async def _dead_letter(self, delivery: Delivery, dead: DeadLetter) -> None:
        """Publish the delivery to `<queue>.dead` with `dead`'s reason, confirmed, then ack."""
        transport = self._transport_of()
        envelope = dead_letter_envelope(delivery, dead, now=self._clock.time())
        await transport.publish(envelope)
        await transport.ack(delivery)
        if dead.reason not in ("failed", "rejected"):
            headers = delivery.properties.headers
            logger.error(
                "message %s[%s] from %s dead-lettered: %s (%s)",
                headers.get("task", "?"),
                headers.get("id", "?"),
                delivery.queue,
                dead.reason,
                dead.detail,
            )

    async def _requeue(self, delivery: Delivery) -> None:
        """Give a delivery back to its queue (drain); closing the channel would do it too."""
        try:
            await asyncio.shield(self._transport_of().reject(delivery, requeue=True))
        except Exception:
            logger.exception("could not requeue a delivery; it returns when the channel closes")

    @property
    def busy_threads(self) -> int:
        """Sync tasks still running in threads (including any past their hard time limit)."""
        return 0 if self._runner is None else self._runner.busy_threads

    def _runner_of(self) -> TaskRunner:
        if self._runner is None:
            raise RuntimeError("the worker is not running")
        return self._runner

    def _publisher_of(self) -> Publisher:
        if self._publisher is None:
            raise RuntimeError("the worker is not running")
        return self._publisher

    def _transport_of(self) -> Transport:
        return self._publisher_of().transport


def _due(message: Message) -> float | None:
    """When `message` is due, in epoch seconds; `None` when it is due at once."""
    millis = message.headers.get(ETA_HEADER)
    if isinstance(millis, int) and not isinstance(millis, bool):
        return millis / 1000
    return None if message.eta is None else message.eta.timestamp()


def _dead_letter_for(decision: DeadLetterAs, outcome: Outcome, attempts: int) -> DeadLetter:
    if isinstance(outcome, Rejected):
        return DeadLetter(reason=decision.reason, detail=outcome.reason, attempts=attempts)
    exc = outcome.exception if isinstance(outcome, Failed | RetryRequested) else None
    trace = outcome.traceback if isinstance(outcome, Failed | RetryRequested) else None
    return DeadLetter(
        reason=decision.reason,
        detail=str(exc) if exc is not None else "",
        exception_type=_qualname(exc) if exc is not None else None,
        traceback=trace,
        attempts=attempts,
    )


def _qualname(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
