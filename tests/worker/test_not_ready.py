"""A broker that cannot serve a worker's subscription yet: the worker waits it out.

In a cluster, a stream another node just declared may have no running replica on this
worker's node yet, and a quorum queue electing its leader gives no reply in time. Both came
back as errors that stopped the worker (issue 19), leaving its queues unserved. The AMQP
transport now reports them as `BrokerNotReady`, and the worker subscribes again after a
backoff pause, at start and after a reconnect, for as long as it runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq.exceptions
import pytest

from hare.core.topology import Queue
from hare.errors import BrokerError, BrokerNotReady, TopologyMismatch
from hare.testing import ManualClock, memory_app
from hare.transport.amqp.errors import broker_error
from hare.transport.memory.transport import MemoryTransport
from hare.transport.reconnect import MAX_PAUSE
from hare.worker import Worker
from tests.runtime import echo_app

pytestmark = pytest.mark.anyio

REPLICA = (
    "PRECONDITION_FAILED - stream queue 'hare.revoked.v1' in vhost '/' does not have a "
    "running replica on the local node"
)


def test_what_a_catching_up_node_says_is_not_ready_not_a_mismatch() -> None:
    closed = aiormq.exceptions.ChannelPreconditionFailed(REPLICA)
    error = broker_error(closed, "declare", "queue 'x'", timeout=30, connected=True)
    assert isinstance(error, BrokerNotReady) and "running replica" in str(error)
    silent = broker_error(TimeoutError(), "declare", "queue 'x'", timeout=30, connected=True)
    assert isinstance(silent, BrokerNotReady) and "no reply within 30s" in str(silent)
    mismatch = aiormq.exceptions.ChannelPreconditionFailed("PRECONDITION_FAILED - inequivalent")
    error = broker_error(mismatch, "declare", "queue 'x'", timeout=30, connected=True)
    assert isinstance(error, TopologyMismatch)
    unconfirmed = broker_error(TimeoutError(), "publish", "publish", timeout=5, connected=True)
    assert isinstance(unconfirmed, BrokerError) and not isinstance(unconfirmed, BrokerNotReady)


class CatchingUp:
    """How many queue declarations the broker refuses still, as a node without a running
    replica does (patched into `MemoryTransport.declare_queue`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refusals = 0
        original = MemoryTransport.declare_queue

        async def declare_queue(transport: MemoryTransport, queue: Queue) -> None:
            if self.refusals > 0:
                self.refusals -= 1
                raise BrokerNotReady(f"queue {queue.name!r}: {REPLICA}")
            await original(transport, queue)

        monkeypatch.setattr(MemoryTransport, "declare_queue", declare_queue)


def connection(app: Any) -> MemoryTransport:
    transport = app.make_transport()
    assert isinstance(transport, MemoryTransport)
    return transport


async def test_a_worker_subscribes_again_until_the_node_caught_up(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    app, ledger = echo_app(clock)

    node = CatchingUp(monkeypatch)
    node.refusals = 3
    worker = Worker(app, transport=connection(app))
    with caplog.at_level("WARNING", logger="hare.worker"):
        running = asyncio.create_task(worker.run())
        async with asyncio.timeout(30):
            while node.refusals and not running.done():
                await clock.advance_by(MAX_PAUSE)
        await worker.wait_ready()
    assert not running.done() and worker.state == "consuming"
    tries = [
        r.getMessage() for r in caplog.records if "subscribing: not done yet" in r.getMessage()
    ]
    assert len(tries) == 3 and all("running replica" in line for line in tries)
    await app.asend_task("t.echo", (7,))
    await ledger.wait_for(1)
    assert ledger.runs == [("echo", 7)]
    worker.stop()
    await running
    await app.aclose()


async def test_after_a_reconnect_too(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    node = CatchingUp(monkeypatch)
    transport = connection(app)
    worker = Worker(app, transport=transport)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    node.refusals = 2
    with caplog.at_level("WARNING", logger="hare.worker"):
        await transport.sever()
        async with asyncio.timeout(30):
            while node.refusals or worker.state != "consuming":
                assert not running.done()
                await clock.advance_by(MAX_PAUSE)
    # The work queues and the revocation stream (restored beside them) each met one refusal.
    tries = [r for r in caplog.records if "not done yet" in r.getMessage()]
    assert len(tries) == 2 and worker.state == "consuming"
    worker.stop()
    await running
    await app.aclose()


async def test_a_publish_waits_for_the_node_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """`delay()` declares its queue first: a node catching up delays it, within
    `publish_timeout`, instead of failing it."""
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")

    @app.task(name="t.noop")
    async def noop() -> None: ...

    node = CatchingUp(monkeypatch)
    node.refusals = 2
    sending = asyncio.ensure_future(noop.adelay())
    async with asyncio.timeout(30):
        while not sending.done():
            await clock.advance_by(MAX_PAUSE)
    assert sending.result().id and node.refusals == 0
    transport = connection(app)
    await transport.connect()
    assert await transport.message_count("work") == 1
    await transport.close()
    await app.aclose()
