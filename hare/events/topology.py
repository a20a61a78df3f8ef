"""The broker objects of events, as declarations: pure, a transport applies them.

    emit("order.paid") --> [hare.events] topic exchange
                             |-- binding "order.*"  --> hare.ev.shop.billing.on_paid    (+ .dead)
                             |-- binding "order.#"  --> hare.ev.shop.audit.record        (+ .dead)
                             `-- no binding matched --> [hare.events.unhandled] fanout
                                                          --> hare.events.unhandled (queue)

Each handler's queue is an ordinary hare work queue (the app's queue type, quorum by default,
with its `.dead` queue), so retries through the delay ladder come back to that queue only.
"""

from __future__ import annotations

from hare.core.topology import UNREACHABLE_DELIVERY_LIMIT, Binding, Exchange, Queue, QueueType
from hare.events.names import EXCHANGE, UNHANDLED_EXCHANGE, UNHANDLED_QUEUE

__all__ = ("events_exchange", "handler_binding", "unhandled_topology")


def events_exchange() -> Exchange:
    """The durable topic exchange events go to; what it routes nowhere goes to its alternate
    exchange. Declared alike by every emitter and every worker (RabbitMQ compares the
    `alternate-exchange` argument on redeclare)."""
    return Exchange(
        name=EXCHANGE, type="topic", arguments={"alternate-exchange": UNHANDLED_EXCHANGE}
    )


def unhandled_topology(queue_type: QueueType) -> tuple[Exchange, Queue, Binding]:
    """The alternate exchange, the queue that parks unhandled events, and its binding.

    The queue is of the app's queue type; quorum with a delivery limit out of reach, as hare's
    dead-letter queues, since it is read by taking and handing back (`hare status` counts it).
    """
    exchange = Exchange(name=UNHANDLED_EXCHANGE, type="fanout")
    if queue_type == "classic":
        queue = Queue(name=UNHANDLED_QUEUE, arguments={"x-queue-type": "classic"})
    else:
        queue = Queue(
            name=UNHANDLED_QUEUE,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": UNREACHABLE_DELIVERY_LIMIT},
        )
    return (
        exchange,
        queue,
        Binding(exchange=UNHANDLED_EXCHANGE, destination=UNHANDLED_QUEUE, routing_key=""),
    )


def handler_binding(queue: str, pattern: str) -> Binding:
    """Route the events `pattern` matches to a handler's queue."""
    return Binding(exchange=EXCHANGE, destination=queue, routing_key=pattern)
