"""An in-process `Transport` with RabbitMQ's semantics, for tests that need no broker.

`MemoryTransport` is a connection to a `MemoryBroker`; several transports on one broker behave
like several connections to one RabbitMQ virtual host. It passes the same contract suite as
the AMQP transport (`hare.testing.transport_contract`) and adds what a unit test needs: time comes
from an injected `Clock`, so with `hare.testing.ManualClock` nothing expires until the test
advances the clock, and no test sleeps.

    clock = ManualClock()
    broker = MemoryBroker(clock=clock)
    async with MemoryTransport(broker) as producer, MemoryTransport(broker) as worker:
        ...
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, final

from hare.clock import Clock
from hare.core.envelope import DEFAULT_MAX_MESSAGE_SIZE, Delivery, Envelope, check_size
from hare.core.topology import Binding, Exchange, Queue, consumer_arguments
from hare.errors import BrokerError, BrokerUnavailable, ConfigurationError, NotSupportedError
from hare.transport.base import DeliveryHandler
from hare.transport.memory.broker import MemoryBroker
from hare.transport.memory.queue import MemoryQueue, StoredMessage, copy_headers

__all__ = ("MemoryBroker", "MemoryConsumer", "MemoryTransport")

logger = logging.getLogger("hare.transport.memory")

#: basic.qos prefetch_count is an AMQP short: 0 (no limit) to 65535.
_MAX_PREFETCH = 65_535


@dataclass(frozen=True, slots=True, eq=False)
class _Lease:
    """An unsettled delivery: which queue's message, and which consumer (if any) holds it."""

    tag: int
    queue: MemoryQueue
    message: StoredMessage
    consumer: MemoryConsumer | None


@final
class MemoryConsumer:
    """A subscription made by `MemoryTransport.consume` (implements `Consumer`)."""

    def __init__(
        self,
        transport: MemoryTransport,
        queue: MemoryQueue,
        handler: DeliveryHandler,
        prefetch: int,
    ) -> None:
        self.queue = queue.name
        self.handler = handler
        self.prefetch = prefetch
        self.unsettled = 0
        self.active = True
        self._transport = transport
        self._state = queue

    @property
    def is_active(self) -> bool:
        """Whether deliveries still come (not after cancel, close, or the queue's deletion)."""
        return self.active and self._transport.is_connected

    def has_capacity(self) -> bool:
        return self.active and (self.prefetch == 0 or self.unsettled < self.prefetch)

    def deliver(self, queue: MemoryQueue, message: StoredMessage) -> None:
        self._transport._deliver(self, queue, message)

    def on_queue_deleted(self) -> None:
        self.active = False

    async def cancel(self) -> None:
        """Stop new deliveries (basic.cancel); unsettled ones stay unsettled."""
        self._stop()

    async def close(self) -> None:
        """Cancel, and requeue its unsettled deliveries as a closed AMQP channel does."""
        self._stop()
        self._transport._requeue_leases(self)

    def _stop(self) -> None:
        if self.active:
            self.active = False
            self._transport.broker.unsubscribe(self._state, self)


@final
class MemoryTransport:
    """A connection to a `MemoryBroker` (a new private one if none is given).

    `clock` is the broker's clock: a broker made without one adopts the first transport's,
    and every transport on a broker must use the same one.
    """

    def __init__(
        self,
        broker: MemoryBroker | None = None,
        *,
        clock: Clock | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        if broker is None:
            broker = MemoryBroker(clock=clock)
        elif clock is not None:
            broker.adopt_clock(clock)
        self._broker = broker
        self._max_size = max_message_size
        self._connected = False
        self._tags = itertools.count(1)
        self._unsettled: dict[int, _Lease] = {}
        self._consumers: list[MemoryConsumer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set when the connection was lost other than by `close()` (see `sever`).
        self.connection_lost = asyncio.Event()

    @property
    def broker(self) -> MemoryBroker:
        """The broker this transport is connected to."""
        return self._broker

    @property
    def clock(self) -> Clock:
        """The clock the broker expires messages by."""
        return self._broker.clock

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def __aenter__(self) -> MemoryTransport:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection; a no-op when it is open."""
        if self._connected:
            return
        refusal = self._broker.refusing
        if isinstance(refusal, BrokerUnavailable):
            raise type(refusal)(*refusal.args)
        if refusal:
            raise BrokerUnavailable("the memory broker refuses connections (it is 'down')")
        self._broker.attach()
        self._connected = True
        self._tags = itertools.count(1)

    async def sever(self) -> None:
        """Lose the connection as a broker restart would: like `close`, but reported as a loss.

        For tests of reconnection: unsettled deliveries go back to their queues, consumers stop,
        `connection_lost` is set, and `connect()` opens the connection again.
        """
        await self.close()
        self.connection_lost.set()

    async def close(self) -> None:
        """Close: cancel consumers and their running handlers, requeue what is unsettled.

        As when a RabbitMQ channel closes, every unsettled delivery goes back to its queue
        marked redelivered (docs: confirms, "Automatic Requeueing"), and the exclusive queues
        of this connection are deleted.
        """
        if not self._connected:
            return
        self._connected = False
        for consumer in self._consumers:
            consumer._stop()
        self._consumers.clear()
        # aiormq cancels the tasks running consumer callbacks when their channel closes. A
        # handler that closes its own transport is not waited for (it would wait on itself).
        current = asyncio.current_task()
        running = {task for task in self._tasks if task is not current}
        for task in running:
            task.cancel()
        try:
            if running:
                await asyncio.wait(running)
        finally:
            leases = sorted(self._unsettled.values(), key=lambda lease: lease.tag)
            self._unsettled.clear()
            for lease in leases:
                if lease.consumer is not None:
                    lease.consumer.unsettled -= 1
                self._broker.settle(lease.queue, lease.message, "requeue")
            self._broker.delete_owned(self)
            await self._broker.detach()

    async def declare_exchange(self, exchange: Exchange) -> None:
        self._ensure_connected()
        self._broker.declare_exchange(exchange)

    async def declare_queue(self, queue: Queue) -> None:
        self._ensure_connected()
        self._broker.declare_queue(queue, self)

    async def bind(self, binding: Binding) -> None:
        self._ensure_connected()
        self._broker.bind(binding)

    async def delete_queue(self, name: str) -> None:
        self._ensure_connected()
        self._broker.delete_queue(name, self)

    async def publish(self, envelope: Envelope, *, mandatory: bool = True) -> None:
        """Publish; returning means routed and enqueued (or dropped if not mandatory)."""
        await asyncio.sleep(0)  # a publish is I/O against a real broker: let others run
        check_size(envelope, self._max_size)
        self._ensure_connected()
        self._broker.publish(envelope, mandatory=mandatory)

    async def consume(
        self,
        queue: str,
        handler: DeliveryHandler,
        *,
        prefetch: int,
        arguments: Mapping[str, Any] | None = None,
    ) -> MemoryConsumer:
        """Subscribe; each delivery runs `handler` in its own task, as aiormq does."""
        self._ensure_connected()
        if not 0 <= prefetch <= _MAX_PREFETCH:
            raise ConfigurationError(
                f"prefetch must be 0 (no limit) to {_MAX_PREFETCH}, not {prefetch}"
            )
        checked = consumer_arguments(arguments)
        state = self._broker.open_queue(queue, self)
        consumer = MemoryConsumer(self, state, handler, prefetch)
        self._broker.subscribe(state, consumer, checked, prefetch)
        self._consumers.append(consumer)
        self._broker.dispatch(state)
        return consumer

    async def get(self, queue: str) -> Delivery | None:
        await asyncio.sleep(0)
        self._ensure_connected()
        taken = self._broker.get(queue, self)
        if taken is None:
            return None
        state, message = taken
        lease = _Lease(tag=next(self._tags), queue=state, message=message, consumer=None)
        self._unsettled[lease.tag] = lease
        return self._delivery(lease, via_get=True)

    async def ack(self, delivery: Delivery) -> None:
        lease = self._take(delivery)
        self._broker.settle(lease.queue, lease.message, "ack")

    async def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        if self._broker.is_stream(delivery.queue):
            # RabbitMQ closes the connection (540 NOT_IMPLEMENTED); refused beforehand.
            raise NotSupportedError(f"basic.reject on stream {delivery.queue!r}", "ack it")
        lease = self._take(delivery)
        self._broker.settle(lease.queue, lease.message, "requeue" if requeue else "reject")

    async def purge(self, queue: str) -> int:
        self._ensure_connected()
        return self._broker.purge(queue, self)

    async def message_count(self, queue: str) -> int:
        self._ensure_connected()
        return self._broker.message_count(queue)

    async def consumer_count(self, queue: str) -> int:
        self._ensure_connected()
        state = self._broker.open_queue(queue, self)
        if state.settings.single_active_consumer and state.settings.quorum:
            # A quorum queue counts its active consumer only (measured on 3.10.8 and 4.0.5).
            return min(1, len(state.subscribers))
        return len(state.subscribers)

    # -- internals ------------------------------------------------------------------------------

    def _ensure_connected(self) -> None:
        if not self._connected:
            raise BrokerUnavailable("the memory transport is not connected (call connect())")

    def _requeue_leases(self, consumer: MemoryConsumer) -> None:
        for lease in sorted(self._unsettled.values(), key=lambda lease: lease.tag):
            if lease.consumer is consumer:
                del self._unsettled[lease.tag]
                consumer.unsettled -= 1
                self._broker.settle(lease.queue, lease.message, "requeue")

    def _take(self, delivery: Delivery) -> _Lease:
        self._ensure_connected()
        lease = self._unsettled.get(delivery.delivery_tag)
        if lease is None or lease is not delivery.handle:
            # RabbitMQ closes the channel: PRECONDITION_FAILED - unknown delivery tag.
            raise BrokerError(
                f"PRECONDITION_FAILED - unknown delivery tag {delivery.delivery_tag} "
                "(settled already, or delivered on another connection)"
            )
        del self._unsettled[lease.tag]
        if lease.consumer is not None:
            lease.consumer.unsettled -= 1
        return lease

    def _deliver(
        self, consumer: MemoryConsumer, queue: MemoryQueue, message: StoredMessage
    ) -> None:
        lease = _Lease(tag=next(self._tags), queue=queue, message=message, consumer=consumer)
        self._unsettled[lease.tag] = lease
        consumer.unsettled += 1
        delivery = self._delivery(lease, via_get=False)
        task = asyncio.get_running_loop().create_task(
            _run_handler(consumer.handler, delivery), name=f"hare-memory-delivery-{lease.tag}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # As aiormq: the failure is logged and the delivery stays unsettled.
            logger.error("consumer handler failed", exc_info=exc)

    def _delivery(self, lease: _Lease, *, via_get: bool) -> Delivery:
        message = lease.message
        headers = copy_headers(message.properties.headers)
        if lease.queue.settings.quorum and (via_get or message.returns):
            # Quorum queues count returns in x-delivery-count: basic.get always shows it,
            # a consumer only once it is above 0 (measured on 3.10.8).
            headers["x-delivery-count"] = message.returns
        if lease.queue.settings.stream:
            headers["x-stream-offset"] = message.seq
        return Delivery(
            queue=lease.queue.name,
            body=message.body,
            properties=replace(message.properties, headers=headers),
            exchange=message.exchange,
            routing_key=message.routing_key,
            delivery_tag=lease.tag,
            redelivered=message.redelivered,
            handle=lease,
        )


async def _run_handler(handler: DeliveryHandler, delivery: Delivery) -> None:
    await handler(delivery)
