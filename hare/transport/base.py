"""The seam between hare and a broker: the `Transport` and `Consumer` protocols.

Two implementations are held to one contract suite
(`hare.testing.transport_contract`, which a third-party transport can run too):
`hare.transport.amqp` (RabbitMQ through aiormq) and `hare.transport.memory` (in-process).
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from hare.core.envelope import Delivery as Delivery
from hare.core.envelope import Envelope as Envelope
from hare.core.envelope import Properties as Properties
from hare.core.topology import Binding, Exchange, Queue

if TYPE_CHECKING:
    import asyncio

__all__ = (
    "Consumer",
    "Delivery",
    "DeliveryHandler",
    "Envelope",
    "Properties",
    "Transport",
)


DeliveryHandler = Callable[[Delivery], Awaitable[None]]


class Consumer(Protocol):
    """A running subscription to one queue."""

    queue: str

    @property
    def is_active(self) -> bool:
        """Whether deliveries may still come: not after `cancel` or `close`, nor once the
        broker cancelled it (its queue was deleted) or its channel or connection closed."""
        ...

    async def cancel(self) -> None:
        """Stop receiving new deliveries (basic.cancel); unsettled ones stay unsettled."""
        ...

    async def close(self) -> None:
        """Cancel and let go of it: its unsettled deliveries go back to the queue, and what it
        holds at the broker (an AMQP channel) is released. Never raises."""
        ...


class Transport(Protocol):
    """What hare needs from a broker. Every publish is confirmed before it returns.

    A transport reports a lost connection and does not repair it: `connection_lost` is set
    when the connection closes other than by `close()`, and stays set until its owner clears
    it; `connect()` opens the connection again. The runtime owns reconnecting, re-declaring and
    re-consuming (`transport.reconnect`). A publish may reconnect the connection a worker consumes
    on: the flag staying set is how the worker still learns its consumers are gone.
    """

    connection_lost: asyncio.Event

    async def connect(self) -> None:
        """Open the connection; raise `BrokerUnavailable` if it cannot be had in time."""
        ...

    async def close(self) -> None:
        """Close the connection; unsettled deliveries go back to their queues."""
        ...

    @property
    def is_connected(self) -> bool:
        """Whether the connection is open now."""
        ...

    async def declare_exchange(self, exchange: Exchange) -> None:
        """Declare an exchange; `TopologyMismatch` if it exists with other arguments."""
        ...

    async def declare_queue(self, queue: Queue) -> None:
        """Declare a queue; `TopologyMismatch` if it exists with other arguments."""
        ...

    async def bind(self, binding: Binding) -> None:
        """Bind a queue (or exchange) to an exchange."""
        ...

    async def delete_queue(self, name: str) -> None:
        """Delete a queue and whatever it holds; a missing queue is not an error."""
        ...

    async def publish(self, envelope: Envelope, *, mandatory: bool = True) -> None:
        """Publish and wait for the broker's confirm.

        Raises `PublishNacked`, `MessageReturned` (only with `mandatory`), `PublishTimeout`
        or `BrokerUnavailable`; returning means the broker has taken responsibility.
        """
        ...

    async def consume(
        self,
        queue: str,
        handler: DeliveryHandler,
        *,
        prefetch: int,
        arguments: Mapping[str, Any] | None = None,
    ) -> Consumer:
        """Subscribe to `queue`; at most `prefetch` deliveries are unsettled at once.

        `arguments` are basic.consume's (`hare.core.topology.consumer_arguments` says which): a
        stream consumer gives `x-stream-offset`. A stream needs a prefetch of at least 1, and
        its acks and rejects only give credit back; every delivery from a stream carries its
        offset in the `x-stream-offset` header.
        """
        ...

    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery: the broker forgets the message."""
        ...

    async def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        """Reject a delivery: back to its queue with `requeue`, else dropped or dead-lettered."""
        ...

    async def get(self, queue: str) -> Delivery | None:
        """Fetch one message without a consumer (basic.get); `None` when the queue is empty.

        `NotSupportedError` on a stream (that this transport declared): RabbitMQ would close
        the connection."""
        ...

    async def purge(self, queue: str) -> int:
        """Drop every ready message in `queue`; return how many (streams: as `get`)."""
        ...

    async def message_count(self, queue: str) -> int:
        """How many ready messages `queue` holds."""
        ...

    async def consumer_count(self, queue: str) -> int:
        """How many consumers `queue` has, as a passive declare reports them: with
        `x-single-active-consumer` on a quorum queue, only the active one counts."""
        ...
