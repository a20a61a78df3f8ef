"""Publishing task messages on one transport: declare the target once, encode, confirm."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from hare import ladder, protocol
from hare.clock import Clock
from hare.message import Message
from hare.settings import Settings
from hare.topology import dead_letter_queue, work_queue
from hare.transport.base import Envelope, Transport

#: The header carrying a message's due time in epoch milliseconds (the ISO `eta` header says
#: the same for Celery; this one is cheaper to read and exact).
ETA_HEADER = "hare-eta"

__all__ = ("Publisher",)


class Publisher:
    """Sends task messages to work queues through one transport.

    The first publish to a queue declares it (and its dead-letter queue), as Celery's producer
    does, so a message published before any worker started is kept rather than returned as
    unroutable. Every publish waits for the broker's confirm.
    """

    def __init__(self, transport: Transport, settings: Settings, clock: Clock) -> None:
        self.transport = transport
        self._settings = settings
        self._clock = clock
        self._declared: set[str] = set()
        self._declaring: dict[str, asyncio.Future[None]] = {}
        self._ladder_ready = False
        self._bound: set[str] = set()

    async def ensure_queue(self, queue: str) -> None:
        """Declare `queue` and `<queue>.dead` once per publisher (concurrent callers share it)."""
        if queue in self._declared:
            return
        pending = self._declaring.get(queue)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._declaring[queue] = future
        try:
            settings = self._settings
            await self.transport.declare_queue(
                work_queue(queue, settings.queue_type, delivery_limit=settings.delivery_limit)
            )
            await self.transport.declare_queue(dead_letter_queue(queue, settings.queue_type))
        except BaseException as exc:
            future.set_exception(exc)
            # Mark the exception retrieved: a concurrent caller may not be waiting on it.
            future.exception()
            raise
        else:
            self._declared.add(queue)
            future.set_result(None)
        finally:
            del self._declaring[queue]

    async def ensure_ladder(self) -> None:
        """Declare the delay ladder (idempotent on the broker; once per publisher here)."""
        if self._ladder_ready:
            return
        exchanges, queues, bindings = ladder.ladder_topology()
        for exchange in exchanges:
            await self.transport.declare_exchange(exchange)
        for ladder_queue in queues:
            await self.transport.declare_queue(ladder_queue)
        for binding in bindings:
            await self.transport.bind(binding)
        self._ladder_ready = True

    async def ensure_delay_target(self, queue: str) -> None:
        """Make sure delayed messages for `queue` can leave the ladder into it.

        The producer binds as well as the worker: a delayed message for a queue that no worker
        has declared yet must still arrive (NServiceBus #367 lost such messages).
        """
        if queue in self._bound:
            return
        await self.ensure_ladder()
        await self.ensure_queue(queue)
        await self.transport.bind(ladder.destination_binding(queue))
        self._bound.add(queue)

    def forget_declarations(self) -> None:
        """Declare again on next use (after a reconnect, or after queues were deleted)."""
        self._declared.clear()
        self._bound.clear()
        self._ladder_ready = False

    async def send(self, queue: str, message: Message) -> None:
        """Publish `message` to `queue` and wait until the broker confirmed it.

        A message with an `eta` at least one ladder unit ahead travels through the delay
        ladder; the broker holds it until it is due. Raises `DelayTooLong` beyond the ladder's
        reach, before anything is published.
        """
        now = self._clock.time()
        route = None
        if message.eta is not None:
            route = ladder.route(message.eta.timestamp() - now, queue)
            if ETA_HEADER not in message.headers:
                due = round(message.eta.timestamp() * 1000)
                message = replace(message, headers={**message.headers, ETA_HEADER: due})
        if route is None:
            if queue not in self._declared:
                await self.ensure_queue(queue)
            body, properties = protocol.encode(message, now=now)
            envelope = Envelope(exchange="", routing_key=queue, body=body, properties=properties)
        else:
            if queue not in self._bound:
                await self.ensure_delay_target(queue)
            body, properties = protocol.encode(message, now=now)
            # No per-message TTL inside the ladder: a message whose own expiration is shorter
            # than a level's TTL would be dead-lettered to the next level early. The worker
            # enforces `expires` on arrival instead.
            if properties.expiration is not None:
                properties = replace(properties, expiration=None)
            envelope = Envelope(
                exchange=route.exchange,
                routing_key=route.routing_key,
                body=body,
                properties=properties,
            )
        await self.transport.publish(envelope)
