"""A FastAPI app that sends hare tasks, and the worker that runs them.

    uvicorn examples.fastapi_app:api          # the web app
    hare worker examples.fastapi_app:app      # the worker

The lifespan opens the broker connection when the web app starts (`async with app:`), so the
first request does not pay for connecting (about 0.4 s on a local RabbitMQ), and closes it
when the web app stops. Handlers send with `await task.adelay(...)`, which returns once
RabbitMQ confirmed the message. The broker is `HARE_BROKER_URL`
(default amqp://guest:guest@localhost:5672/).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hare import Hare

app = Hare("shop")


@app.task(name="shop.send_receipt")
async def send_receipt(order_id: int, email: str) -> str:
    # A real task would render and send the e-mail here.
    return f"receipt for order {order_id} sent to {email}"


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with app:  # connect now; close when the web app stops
        yield


api = FastAPI(lifespan=lifespan)


@api.post("/orders/{order_id}/receipt")
async def receipt(order_id: int, email: str) -> dict[str, str]:
    sent = await send_receipt.adelay(order_id, email)
    return {"task_id": sent.id}
