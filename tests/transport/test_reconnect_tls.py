"""A TLS failure is a configuration error: a worker starting and a publish raise it at once;
a worker that was consuming waits it out, as it does a broker that is down (memory transport,
manual clock). The real TLS errors are in tests/amqp/test_tls_amqp.py."""

from __future__ import annotations

import asyncio

import pytest

from hare import Worker
from hare.errors import BrokerTLSError
from hare.publisher import Publisher
from hare.testing import ManualClock, memory_app
from hare.transport.memory.transport import MemoryTransport
from hare.transport.reconnect import MAX_PAUSE
from tests.runtime import echo_app

pytestmark = pytest.mark.anyio

WRONG_CA = BrokerTLSError(
    "cannot connect to the broker: rabbit:5671: TLS: certificate verify failed"
)


@pytest.mark.parametrize("retry_on_startup", [True, False])
async def test_a_worker_meeting_a_tls_failure_at_start_stops_with_it(
    retry_on_startup: bool,
) -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    transport = app.make_transport()
    assert isinstance(transport, MemoryTransport)
    transport.broker.refusing = WRONG_CA
    worker = Worker(app, transport=transport, retry_on_startup=retry_on_startup)
    running = asyncio.create_task(worker.run())
    await clock.yield_control()  # the clock never moves: no backoff pause was waited out
    assert running.done()
    with pytest.raises(BrokerTLSError, match="certificate verify failed"):
        await running
    assert worker.state == "stopped"
    await app.aclose()


async def test_a_publish_meeting_a_tls_failure_raises_it_before_its_deadline() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work", publish_timeout=30)
    transport = app.make_transport()
    assert isinstance(transport, MemoryTransport)
    transport.broker.refusing = WRONG_CA
    _, message = app.build_message("t.x", (), {}, {})
    sending = asyncio.create_task(Publisher(transport, app.settings, clock).send("work", message))
    await clock.yield_control()
    assert sending.done()
    with pytest.raises(BrokerTLSError, match="certificate verify failed"):
        await sending
    await app.aclose()


async def test_a_consuming_worker_waits_out_a_tls_failure_and_consumes_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worker's configuration worked: a TLS failure on reconnecting is the broker's change
    (a certificate renewed wrongly), logged with its cause until it is put right."""
    clock = ManualClock()
    app, ledger = echo_app(clock)

    transport = app.make_transport()
    assert isinstance(transport, MemoryTransport)
    worker = Worker(app, transport=transport)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    transport.broker.refusing = WRONG_CA
    with caplog.at_level("WARNING", logger="hare.reconnect"):
        await transport.sever()
        await clock.advance_by(3 * MAX_PAUSE)
    assert worker.state == "reconnecting" and not running.done()
    assert any("TLS: certificate verify failed" in r.getMessage() for r in caplog.records)
    transport.broker.refusing = False
    await clock.advance_by(MAX_PAUSE)
    await worker.wait_ready()
    await app.asend_task("t.echo", (1,))
    await ledger.wait_for(1)
    worker.stop()
    await running
    assert ledger.runs == [("echo", 1)]
    await app.aclose()
