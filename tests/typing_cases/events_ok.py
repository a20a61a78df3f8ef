from dataclasses import dataclass

from hare import Hare
from hare.events import Emitted, Event

app = Hare("typing", broker="memory://")


@dataclass
class Payment:
    order: str
    cents: int


paid: Event[Payment] = app.event("order.paid", Payment)


@paid.handler
async def receipt(payment: Payment) -> None: ...


@paid.handler(max_retries=5, autoretry_for=(ConnectionError,))
def book(payment: Payment) -> int:
    return payment.cents


@app.on("order.*", "refund.#", time_limit=30)
async def audit(payload: dict[str, object]) -> None: ...


def send() -> Emitted:
    cents: int = book(Payment("A-1", 1))
    assert cents == 1
    return paid.emit(Payment("A-1", 1200))


async def asend() -> None:
    await paid.aemit(Payment("A-1", 1200))
    await app.aemit("order.refunded", {"order": "A-1"})
