"""A dead letter the broker refuses is published again until it is kept; then the delivery is
settled and the worker goes on.

On a cluster, `<queue>.dead` (a classic queue, on one node) is unavailable while its node is
down, and the broker answers a dead letter's publish with basic.nack (measured on RabbitMQ
4.0.5, issue 19). The worker used to log "could not settle" and leave the delivery unsettled
on its live channel: the slot stayed taken until the connection closed, and a worker of
concurrency 1 ran nothing more.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hare.core.envelope import Envelope
from hare.core.topology import DEAD_SUFFIX
from hare.errors import PublishNacked
from hare.testing import Ledger, ManualClock, memory_app
from hare.transport.memory.transport import MemoryTransport
from hare.transport.reconnect import MAX_PAUSE
from hare.worker import Worker

pytestmark = pytest.mark.anyio


class Refusing:
    """How many more publishes to `<queue>.dead` the broker refuses with basic.nack."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refusals = 0
        original = MemoryTransport.publish

        async def publish(transport: MemoryTransport, envelope: Envelope, **kw: Any) -> None:
            if envelope.routing_key.endswith(DEAD_SUFFIX) and self.refusals > 0:
                self.refusals -= 1
                raise PublishNacked("the broker refused the message (basic.nack)")
            await original(transport, envelope, **kw)

        monkeypatch.setattr(MemoryTransport, "publish", publish)


async def test_a_refused_dead_letter_is_sent_again_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.fail")
    async def fail() -> None:
        ledger.record("fail", 0)
        raise RuntimeError("for good")

    @app.task(name="t.echo")
    async def echo(n: int) -> None:
        ledger.record("echo", n)

    broker = Refusing(monkeypatch)
    broker.refusals = 3
    worker = Worker(app, concurrency=1)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    with caplog.at_level("WARNING", logger="hare.worker"):
        await fail.adelay()
        await echo.adelay(7)
        async with asyncio.timeout(30):
            while broker.refusals:
                assert not running.done()
                await clock.advance_by(MAX_PAUSE)
        await ledger.wait_for(2)
    assert ledger.runs == [("fail", 0), ("echo", 7)]
    tries = [r.getMessage() for r in caplog.records if "dead-lettering into" in r.getMessage()]
    assert len(tries) == 3 and all("basic.nack" in line for line in tries)
    transport = app.make_transport()
    await transport.connect()
    assert await transport.message_count("work" + DEAD_SUFFIX) == 1
    assert await transport.message_count("work") == 0
    await transport.close()
    worker.stop()
    await running
    await app.aclose()
