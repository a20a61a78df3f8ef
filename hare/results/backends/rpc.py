"""`rpc://`: each result travels as a message to the caller's own reply queue, as in Celery.

Wire format (Celery 5.7, research/celery.md §2.8): the worker publishes the result body to the
default exchange with routing key = the request's `reply_to`, `correlation_id` = task id,
delivery mode 1, JSON. The *client* declares its reply queue before its first publish, exactly
as Celery 5.7 does (durable, auto-delete, `x-expires` = `result_expires`), and consumes it;
a worker never declares it, and a reply to a queue that has gone is dropped by the broker
(published without `mandatory`), never a failure of the task.

Results are single-consumer: only the process that sent the task receives its result, once.
There is no shared store, so no chords (as in Celery). One queue per app and process; its
consumer runs on one event loop and hands replies to waiters on any loop (`ReplyRouter`).
The consumer has a connection of its own and reconnects by itself; replies that arrive while
it is disconnected are lost if the broker deleted the auto-delete queue meanwhile (waiters
then time out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from typing import TYPE_CHECKING

from hare.clock import Clock
from hare.core.envelope import Delivery, Envelope, Properties
from hare.core.message import Message
from hare.core.settings import Settings
from hare.core.topology import Queue
from hare.errors import (
    BrokerError,
    ConfigurationError,
    MalformedResult,
    NotSupportedError,
    ResultBackendError,
    ResultTimeout,
)
from hare.results import celery_format
from hare.results.backends.base import await_with_timeout, encode_for_store
from hare.results.backends.replies import ReplyRouter
from hare.results.state import (
    GroupRef,
    TaskResult,
)
from hare.transport.base import Consumer, Transport
from hare.transport.reconnect import backoff_delay, reconnect

if TYPE_CHECKING:
    from hare.connections import Connections

__all__ = ("RpcBackend", "reply_queue", "reply_queue_name")

logger = logging.getLogger("hare.results")

#: Unacknowledged replies the consumer may hold (it acks each as soon as it is routed).
PREFETCH = 256
#: A waiter on a loop other than the consumer's checks this often that the consumer lives.
CONSUMER_CHECK_INTERVAL = 5.0


def reply_queue_name(node: int, pid: int, instance: int) -> str:
    """A reply queue name as kombu's `oid_from` makes one: a uuid3 of node, process, object."""
    return str(uuid.uuid3(uuid.NAMESPACE_OID, f"{node:x}-{pid:x}-0-{instance:x}"))


def reply_queue(name: str, expires: float, *, expiring: bool = True) -> Queue:
    """The reply queue declaration of Celery 5.7's rpc backend (its `binding`).

    `expiring=False` leaves out `x-expires`, for the memory broker, which cannot expire an
    idle queue and refuses the argument rather than ignore it.
    """
    arguments = {"x-expires": int(float(expires) * 1000)} if expiring else {}
    return Queue(name=name, durable=True, auto_delete=True, arguments=arguments)


def _no_chords() -> NotSupportedError:
    return NotSupportedError(
        "chords with result_backend='rpc://'",
        "rpc results go only to the caller, as in Celery; use a redis:// result backend",
    )


def _is_alive(backend: object) -> bool:
    return isinstance(backend, RpcBackend) and backend.alive


class RpcBackend:
    """The rpc `ResultBackend` of one event loop."""

    def __init__(
        self,
        *,
        router: ReplyRouter,
        queue: Queue,
        connections: Connections,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._router = router
        self._queue = queue
        self._connections = connections
        self._settings = settings
        self._clock = clock
        self._rng = random.Random()
        self._loop = asyncio.get_running_loop()
        self._transport: Transport | None = None
        self._consumer: Consumer | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False

    @property
    def alive(self) -> bool:
        """Whether this backend consumes replies now (its loop runs and it was not closed)."""
        loop = self._loop
        return not self._closed and loop.is_running() and not loop.is_closed()

    # -- client side ------------------------------------------------------------------------

    async def prepare(self) -> None:
        await self._ensure_consumer()

    async def _ensure_consumer(self) -> None:
        """Consume the reply queue here, unless a live backend on another loop does."""
        if self._consumer is not None:
            return
        async with self._start_lock:
            if self._consumer is not None:
                return
            if not self._router.claim_consumer(self, _is_alive):
                return
            try:
                transport = self._transport or self._connections.make_transport()
                self._transport = transport
                if not transport.is_connected:
                    await transport.connect()
                transport.connection_lost.clear()
                await self._subscribe(transport)
            except BaseException:
                self._router.release_consumer(self)
                raise
            if self._supervisor is None:
                self._supervisor = asyncio.create_task(self._supervise(transport))

    async def _subscribe(self, transport: Transport) -> None:
        await transport.declare_queue(self._queue)
        self._consumer = await transport.consume(
            self._queue.name, self._on_reply, prefetch=PREFETCH
        )

    async def _supervise(self, transport: Transport) -> None:
        """Reconnect and consume again whenever the consumer's connection is lost."""
        while True:
            await transport.connection_lost.wait()
            transport.connection_lost.clear()
            self._consumer = None
            logger.warning("rpc results: lost the reply consumer's connection; reconnecting")
            attempt = 0
            while True:
                try:
                    await reconnect(
                        transport,
                        clock=self._clock,
                        rng=self._rng,
                        what="rpc results",
                        retry_tls=True,
                    )
                    await self._subscribe(transport)
                    break
                except BrokerError as exc:
                    logger.warning("rpc results: cannot consume %s yet: %s", self._queue.name, exc)
                    await self._clock.sleep(backoff_delay(attempt, self._rng))
                    attempt += 1

    async def _on_reply(self, delivery: Delivery) -> None:
        key = delivery.properties.correlation_id
        try:
            content_type = delivery.properties.content_type or "application/json"
            if content_type != "application/json":
                raise MalformedResult(
                    f"a reply in {content_type!r}: hare reads JSON results only "
                    "(set result_serializer='json' on Celery workers)"
                )
            result = celery_format.loads(delivery.body, task_id=key)
        except MalformedResult as exc:
            logger.warning("rpc results: unreadable reply (correlation id %s): %s", key, exc)
            if key:
                self._router.fail(key, exc)
        else:
            self._router.deliver(key or result.task_id, result)
        finally:
            await self._transport_of(delivery).ack(delivery)

    def _transport_of(self, delivery: Delivery) -> Transport:
        if self._transport is None:  # pragma: no cover - a delivery implies a transport
            raise BrokerError(f"a reply from {delivery.queue!r} after the consumer closed")
        return self._transport

    async def get(self, task_id: str) -> TaskResult | None:
        await self._ensure_consumer()
        return self._router.lookup(task_id)

    async def wait(
        self,
        task_id: str,
        timeout: float | None,  # noqa: ASYNC109 - Celery's API
    ) -> TaskResult:
        await self._ensure_consumer()
        future: asyncio.Future[TaskResult] = self._loop.create_future()
        ready = self._router.register(task_id, future)
        if ready is not None:
            return ready
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        try:
            while True:
                if self._consumer is not None:  # this loop consumes: no need to check on it
                    left = None if deadline is None else deadline - self._clock.monotonic()
                    return await await_with_timeout(future, left, self._clock, task_id)
                left = (
                    CONSUMER_CHECK_INTERVAL
                    if deadline is None
                    else min(CONSUMER_CHECK_INTERVAL, deadline - self._clock.monotonic())
                )
                try:
                    return await await_with_timeout(future, left, self._clock, task_id)
                except ResultTimeout:
                    if deadline is not None and self._clock.monotonic() >= deadline:
                        raise ResultTimeout(task_id, timeout or 0.0) from None
                await self._ensure_consumer()  # take over if the consuming loop has gone
        except ResultTimeout:
            raise ResultTimeout(task_id, timeout or 0.0) from None
        finally:
            self._router.unregister(task_id, future)

    async def forget(self, task_id: str) -> None:
        self._router.forget(task_id)

    async def set_chord_size(self, group_id: str, size: int) -> None:
        raise _no_chords()

    async def save_chord_header(self, header: GroupRef) -> None:
        raise _no_chords()

    async def chord_part_done(
        self, group_id: str, size: int | None, result: TaskResult
    ) -> list[TaskResult] | None:
        raise _no_chords()

    async def chord_complete(self, group_id: str, *, failed: bool = False) -> None:
        raise _no_chords()

    async def add_to_chord(self, group_id: str) -> None:
        raise _no_chords()

    # -- worker side ------------------------------------------------------------------------

    async def store(self, result: TaskResult, request: Message | None) -> None:
        """Reply to `request.reply_to`; nothing when the request names no reply queue."""
        if request is None:
            raise ConfigurationError(
                "rpc:// sends a result to the caller's reply queue, which only the task's "
                "request names: pass the request"
            )
        if not request.reply_to:
            return
        envelope = Envelope(
            exchange="",
            routing_key=request.reply_to,
            body=encode_for_store(result, self._clock),
            properties=Properties(
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=1,
                priority=0,
                correlation_id=request.correlation_id or result.task_id,
            ),
        )
        await self._publish(envelope, result.task_id)

    async def _publish(self, envelope: Envelope, task_id: str) -> None:
        """Publish through this loop's publisher, reconnecting within `publish_timeout`.

        Not mandatory: the broker drops a reply whose queue has gone (the caller left), and
        still confirms it.
        """
        publisher = await self._connections.publisher()
        try:
            await publisher.publish(envelope, mandatory=False, what=f"result of task {task_id}")
        except BrokerError as exc:
            raise ResultBackendError(
                f"the result of task {task_id} was not sent to {envelope.routing_key!r}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        """Stop consuming here (if this loop consumed) and close the consumer's connection."""
        self._closed = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        consumer, self._consumer = self._consumer, None
        transport, self._transport = self._transport, None
        self._router.release_consumer(self)
        if consumer is not None:
            with contextlib.suppress(BrokerError):
                await consumer.cancel()
        if transport is not None:
            await transport.close()
