"""Events on the broker: declaring the exchange and the handler queues, publishing an event.

`emit` declares the exchange (and the queue that parks unhandled events) once per publisher
connection, then publishes once, with a confirm, to `hare.events` with the event name as the
routing key: RabbitMQ copies it into every handler queue bound for it, or, when none is,
hands it to the alternate exchange and `hare.events.unhandled`. A worker declares the same,
then every handler queue of its app (with `.dead`) and the queue's bindings, at each start
and reconnect: a queue exists from the first start of a worker that knows its handler, and
receives every event emitted from then on.
"""

from __future__ import annotations

from hare.clock import Clock
from hare.core import protocol
from hare.core.envelope import Envelope
from hare.core.message import Message
from hare.core.settings import Settings
from hare.core.topology import Queue
from hare.errors import NotFound
from hare.events.handlers import Events
from hare.events.names import EXCHANGE
from hare.events.topology import events_exchange, handler_binding, unhandled_topology
from hare.publisher import Publisher

__all__ = ("declare_exchange", "declare_handlers", "publish_event")


async def declare_exchange(publisher: Publisher, settings: Settings) -> None:
    """Declare the events exchange, its alternate exchange and the unhandled queue (once per
    connection of `publisher`)."""
    transport = publisher.transport

    async def declare() -> None:
        exchange, queue, binding = unhandled_topology(settings.queue_type)
        await transport.declare_exchange(exchange)
        await _declare_if_missing(publisher, queue)
        await transport.bind(binding)
        await transport.declare_exchange(events_exchange())

    await publisher.declare_once("events", declare)


async def declare_handlers(publisher: Publisher, events: Events, settings: Settings) -> None:
    """Declare the exchange, then each handler queue of `events` (with its `.dead`, as any
    work queue) and its bindings: what a worker does at start, whatever queues it consumes.
    Nothing when the app has no handlers."""
    if not events:
        return
    await declare_exchange(publisher, settings)
    for handler in events.handlers():
        await publisher.ensure_queue(handler.queue)
        for pattern in handler.patterns:
            await publisher.transport.bind(handler_binding(handler.queue, pattern))


async def publish_event(
    publisher: Publisher, settings: Settings, clock: Clock, event: str, message: Message
) -> None:
    """Publish `message` as event `event` and wait for the confirm; through a lost connection
    it reconnects and publishes again (a duplicate is possible, a loss is not), for up to
    `publish_timeout` seconds. The app's middleware sees it (`before_publish`,
    `after_publish`) with the exchange's name for a queue; Celery's publish signals are not
    sent (Celery has no such message)."""
    middleware = publisher.middleware
    if middleware.wants("before_publish"):
        message = middleware.before_publish(message, EXCHANGE)
    body, properties = protocol.encode(message, now=clock.time())
    envelope = Envelope(exchange=EXCHANGE, routing_key=event, body=body, properties=properties)

    async def attempt() -> None:
        await declare_exchange(publisher, settings)
        await publisher.transport.publish(envelope)

    await publisher.retrying(f"emit {event!r}", attempt)
    if middleware.wants("after_publish"):
        middleware.call("after_publish", message, EXCHANGE)


async def _declare_if_missing(publisher: Publisher, queue: Queue) -> None:
    """Use the queue as it is when it exists (declared by an app of another queue type)."""
    try:
        await publisher.transport.message_count(queue.name)
    except NotFound:
        await publisher.transport.declare_queue(queue)
