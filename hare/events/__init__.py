"""Events: publish once, and every handler bound for the name gets it once (issue 20).

    paid = app.event("order.paid", Payment)

    @paid.handler                       # or @app.on("order.*"), with task options
    async def send_receipt(payment: Payment) -> None: ...

    paid.emit(Payment(order="A-1", cents=1200))   # or app.emit("order.paid", {...})

Pure modules (no I/O): `names` (event names, patterns, queue names), `topology` (the exchange,
the unhandled queue, bindings), `payload` (checking a payload against an annotation),
`message` (the wire message), `dispatch` (a handler queue's delivery addressed to its
handler). `handlers` holds an app's handlers and `Event`; `emitting` declares and publishes.
See docs/events.md.
"""

from hare.events.errors import InvalidEventName, InvalidPayload
from hare.events.handlers import Emitted, Event, Events, Handler
from hare.events.names import EVENT_TASK, EXCHANGE, UNHANDLED_QUEUE

__all__ = (
    "EVENT_TASK",
    "EXCHANGE",
    "UNHANDLED_QUEUE",
    "Emitted",
    "Event",
    "Events",
    "Handler",
    "InvalidEventName",
    "InvalidPayload",
)
