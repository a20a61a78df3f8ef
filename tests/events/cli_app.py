"""An app for the `hare events` unit tests (memory broker)."""

from __future__ import annotations

from hare.testing import memory_app

app = memory_app(main="cliev", default_queue="work")


@app.task(name="cliev.plain", queue="emails")
def plain() -> None: ...


@app.on("order.*", "refund.#", name="cliev.orders")
def orders(payload: object) -> None: ...


@app.on("user.signed_up", name="cliev.welcome")
async def welcome(payload: object) -> None: ...
