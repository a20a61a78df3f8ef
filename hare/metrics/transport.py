"""`MeasuredTransport`: a worker's transport, with its publish confirms timed and its
reconnects counted.

It wraps the transport the worker would use and passes every call through; only `connect`
and `publish` look at what happens. Every publish of the worker goes through it: task messages,
retries, re-delays, dead letters, what follows a task, results over rpc://.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from hare.core.envelope import Delivery, Envelope
from hare.core.topology import Binding, Exchange, Queue
from hare.errors import MessageReturned, PublishNacked, PublishTimeout
from hare.metrics.families import Families
from hare.transport.base import Consumer, DeliveryHandler, Transport

__all__ = ("MeasuredTransport",)


class MeasuredTransport:
    """`inner`, measured into `families`."""

    def __init__(self, inner: Transport, families: Families) -> None:
        self.inner = inner
        self._families = families
        self._confirmed = families.confirm_seconds
        self._acks = families.confirms.labels("ack")
        self._connected_once = False
        #: The same event as `inner`'s: whoever clears or waits on it sees the same flag.
        self.connection_lost: asyncio.Event = inner.connection_lost

    async def connect(self) -> None:
        await self.inner.connect()
        if self._connected_once:
            self._families.reconnects.inc()
        self._connected_once = True

    async def publish(self, envelope: Envelope, *, mandatory: bool = True) -> None:
        started = time.perf_counter()
        try:
            await self.inner.publish(envelope, mandatory=mandatory)
        except Exception as exc:
            self._families.confirms.labels(_answer(exc)).inc()
            raise
        self._acks.inc()
        self._confirmed.observe(time.perf_counter() - started)

    # -- passed through ----------------------------------------------------------------------

    async def close(self) -> None:
        await self.inner.close()

    @property
    def is_connected(self) -> bool:
        return self.inner.is_connected

    async def declare_exchange(self, exchange: Exchange) -> None:
        await self.inner.declare_exchange(exchange)

    async def declare_queue(self, queue: Queue) -> None:
        await self.inner.declare_queue(queue)

    async def bind(self, binding: Binding) -> None:
        await self.inner.bind(binding)

    async def delete_queue(self, name: str) -> None:
        await self.inner.delete_queue(name)

    async def consume(
        self,
        queue: str,
        handler: DeliveryHandler,
        *,
        prefetch: int,
        arguments: Mapping[str, Any] | None = None,
    ) -> Consumer:
        return await self.inner.consume(queue, handler, prefetch=prefetch, arguments=arguments)

    async def ack(self, delivery: Delivery) -> None:
        await self.inner.ack(delivery)

    async def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        await self.inner.reject(delivery, requeue=requeue)

    async def get(self, queue: str) -> Delivery | None:
        return await self.inner.get(queue)

    async def purge(self, queue: str) -> int:
        return await self.inner.purge(queue)

    async def message_count(self, queue: str) -> int:
        return await self.inner.message_count(queue)

    async def consumer_count(self, queue: str) -> int:
        return await self.inner.consumer_count(queue)


def _answer(exc: Exception) -> str:
    """The outcome label of a publish that raised `exc`."""
    if isinstance(exc, MessageReturned):
        return "returned"
    if isinstance(exc, PublishNacked):
        return "nack"
    if isinstance(exc, PublishTimeout):
        return "timeout"
    return "error"
