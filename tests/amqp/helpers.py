"""Helpers for tests on a real RabbitMQ."""

from __future__ import annotations

from typing import Any

from hare import Hare
from hare.core.envelope import Delivery
from hare.transport.base import Transport


def amqp_app(url: str, **settings: Any) -> Hare:
    return Hare("tests", broker=url, environ={}, connect_timeout=5, **settings)


async def take_all(transport: Transport, queue: str) -> list[Delivery]:
    got = []
    while (delivery := await transport.get(queue)) is not None:
        await transport.ack(delivery)
        got.append(delivery)
    return got


async def delete_queues(transport: Transport, *names: str) -> None:
    for name in names:
        await transport.delete_queue(name)
