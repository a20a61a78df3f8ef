"""Messages over `max_message_size` are refused before they are sent, with a clear error.

RabbitMQ 4.x refuses bodies over 16 MiB by closing the channel; hare checks first, so a
caller gets `MessageTooLarge` naming the size and the limit, nothing reaches the queue, and a
task that publishes one fails like any other task (its retries, then its dead letter).
"""

from __future__ import annotations

import pytest

from hare.core.settings import Settings
from hare.errors import ConfigurationError, MessageTooLarge
from hare.testing import Ledger, ManualClock, eventually, memory_app, running_worker
from hare.transport.base import Transport

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


async def test_a_call_over_the_limit_is_refused_before_it_is_sent() -> None:
    app = memory_app(ManualClock(), default_queue="q")

    @app.task(name="t.big")
    async def big(blob: str) -> None: ...

    with pytest.raises(
        MessageTooLarge, match=r"larger than max_message_size, 16777216 bytes \(16.0 MiB\)"
    ) as info:
        await big.adelay("x" * (16 * MIB))
    assert info.value.routing_key == "q"
    await big.adelay("x" * (15 * MIB))  # under the limit: sent
    transport = (await app.publisher()).transport
    assert await transport.message_count("q") == 1
    await app.aclose()


async def test_the_limit_is_a_setting() -> None:
    app = memory_app(ManualClock(), default_queue="q", max_message_size=64 * MIB)

    @app.task(name="t.big")
    async def big(blob: str) -> None: ...

    await big.adelay("x" * (20 * MIB))
    transport = (await app.publisher()).transport
    assert await transport.message_count("q") == 1
    await app.aclose()
    for wrong in (0, 513 * MIB):
        with pytest.raises(ConfigurationError, match="max_message_size"):
            Settings(max_message_size=wrong)


async def test_a_task_that_sends_too_much_fails_and_is_dead_lettered() -> None:
    app = memory_app(ManualClock(), default_queue="q")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.sink")
    async def sink(blob: str) -> None:
        ledger.record("sink")

    @app.task(name="t.source")
    async def source() -> None:
        ledger.record("source")
        await sink.adelay("x" * (17 * MIB))

    async with running_worker(app):
        await source.adelay()
        transport = (await app.publisher()).transport
        await eventually(lambda: _count(transport, "q.dead", 1))
    assert ledger.runs == [("source", None)]  # the follow-up was never sent
    await app.aclose()


async def _count(transport: Transport, queue: str, n: int) -> bool:
    return await transport.message_count(queue) == n


async def test_a_result_too_large_to_send_reaches_its_caller_as_a_failure() -> None:
    app = memory_app(ManualClock(), default_queue="q", result_backend="rpc://")

    @app.task(name="t.big")
    async def big() -> str:
        return "x" * (17 * MIB)

    async with running_worker(app):
        result = await big.adelay()
        with pytest.raises(MessageTooLarge, match="max_message_size"):
            await result.aget(timeout=30)
    await app.aclose()
