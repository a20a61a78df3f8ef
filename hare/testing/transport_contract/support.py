"""What the contract's tests share: a test's connections and names (`ContractEnv`), the
header values and properties sent, and polling with a deadline (`eventually`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import pytest

from hare.core.envelope import Delivery, Envelope, Properties
from hare.core.topology import Binding, Exchange, Queue
from hare.errors import (
    BrokerError,
)
from hare.transport.base import Transport

TransportFactory = Callable[[], Awaitable[Transport]]
T = TypeVar("T")

#: How long a real broker may take to show the effect of an asynchronous operation.
DEADLINE = 10.0

#: Header values of every type hare puts in headers, at the edges of their encodings.
HEADERS: dict[str, Any] = {
    "str": "text",
    "unicode": "héllo ✓",
    "empty": "",
    "int": 42,
    "zero": 0,
    "negative": -7,
    "big": 2**62,
    "big_negative": -(2**62),
    "float": 1.5,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "two", [3.5, None]],
    "dict": {"nested": {"deep": [True, "x"]}, "n": 1},
}

#: Every Properties field set to a value that is not its default.
PROPERTIES = Properties(
    content_type="application/json",
    content_encoding="utf-8",
    headers=HEADERS,
    delivery_mode=2,
    priority=3,
    correlation_id="corr-1",
    reply_to="replies",
    expiration="3600000",
    message_id="msg-1",
    timestamp=1_700_000_000,
    type="task",
    app_id="hare-tests",
)


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, what: str, within: float = DEADLINE
) -> T:
    """Poll `check` until it returns something truthy; fail after `within` seconds.

    The first polls only yield, so an in-process transport passes without real waiting.
    """
    deadline = time.monotonic() + within
    pause = 0.0
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what} (last: {result!r})")
        await anyio.sleep(pause)
        pause = min(0.05, pause * 2 or 0.001)


def envelope(
    routing_key: str, body: bytes = b"body", *, exchange: str = "", **props: Any
) -> Envelope:
    return Envelope(
        exchange=exchange, routing_key=routing_key, body=body, properties=Properties(**props)
    )


async def get_eventually(transport: Transport, queue: str) -> Delivery:
    """The next message of `queue`, waiting for a real broker to have put it there."""

    async def attempt() -> Delivery | None:
        return await transport.get(queue)

    return await eventually(attempt, what=f"a message in {queue}")


async def count_becomes(transport: Transport, queue: str, expected: int) -> None:
    async def check() -> bool:
        return await transport.message_count(queue) == expected

    await eventually(check, what=f"{queue} to hold {expected} ready messages")


class ContractEnv:
    """Connections and names for one test, and the cleanup after it."""

    def __init__(self, factory: TransportFactory, unique: str) -> None:
        self.prefix = f"hare.contract.{unique}"
        self._factory = factory
        self._transports: list[Transport] = []
        self._queues: list[str] = []
        self._exchanges: list[str] = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    async def connect(self) -> Transport:
        transport = await self._factory()
        self._transports.append(transport)
        return transport

    async def queue(self, transport: Transport, suffix: str, **arguments: Any) -> str:
        """Declare a durable queue named after `suffix` with `arguments`; deleted afterwards."""
        name = self.name(suffix)
        self._queues.append(name)
        await transport.declare_queue(Queue(name=name, arguments=arguments))
        return name

    async def exchange(self, transport: Transport, suffix: str, kind: Any, **arguments: Any) -> str:
        """Declare an auto-delete exchange; deleted afterwards with the queues bound to it."""
        name = self.name(suffix)
        self._exchanges.append(name)
        await transport.declare_exchange(
            Exchange(name=name, type=kind, durable=False, auto_delete=True, arguments=arguments)
        )
        return name

    async def cleanup(self) -> None:
        for transport in self._transports:
            await _quietly(transport.close())
        cleaner = await self._factory()
        try:
            sink = self.name("sink")
            await cleaner.declare_queue(Queue(name=sink, durable=False, exclusive=True))
            for exchange in self._exchanges:
                # A 404 closes the channel on RabbitMQ: use a fresh connection after one.
                try:
                    await cleaner.bind(
                        Binding(exchange=exchange, destination=sink, routing_key="#")
                    )
                except BrokerError:
                    await _quietly(cleaner.close())
                    cleaner = await self._factory()
            for queue in [*self._queues, sink]:
                await cleaner.delete_queue(queue)
        finally:
            await _quietly(cleaner.close())


async def _quietly(operation: Awaitable[None]) -> None:
    try:
        await operation
    except BrokerError:
        pass


def async_check(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check
