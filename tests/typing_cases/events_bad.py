from dataclasses import dataclass

from hare import Hare

app = Hare("typing", broker="memory://")


@dataclass
class Payment:
    order: str
    cents: int


@dataclass
class Refund:
    order: str


paid = app.event("order.paid", Payment)


@paid.handler  # E1: a handler of Refund for an event of Payment
async def refunded(refund: Refund) -> None: ...


@app.on("order.paid")
def book(payment: Payment) -> int:
    return payment.cents


async def calls() -> None:
    paid.emit({"order": "A-1"})  # E2: a dict is not a Payment
    await paid.aemit(Refund("A-1"))  # E3: a Refund is not a Payment
    book(Refund("A-1"))  # E4: the handler takes a Payment
