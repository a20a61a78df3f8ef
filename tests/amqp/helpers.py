"""Helpers for tests on a real RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hare import Hare
from hare.core.envelope import Delivery
from hare.transport.base import Transport


def amqp_app(url: str, **settings: Any) -> Hare:
    return Hare("tests", broker=url, environ={}, connect_timeout=5, **settings)


async def eventually(
    check: Callable[[], Any], *, within: float = 20.0, interval: float = 0.02
) -> Any:
    """Poll `check` until it returns a truthy value; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def take_all(transport: Transport, queue: str) -> list[Delivery]:
    got = []
    while (delivery := await transport.get(queue)) is not None:
        await transport.ack(delivery)
        got.append(delivery)
    return got


async def delete_queues(transport: Transport, *names: str) -> None:
    for name in names:
        await transport.delete_queue(name)
