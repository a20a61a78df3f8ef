"""Lost connections on the memory transport with a manual clock: the worker comes back by
itself; a publish waits up to its deadline, then fails clearly."""

from __future__ import annotations

import asyncio
import random

import pytest

from hare import Hare, Worker
from hare.errors import BrokerUnavailable
from hare.publisher import Publisher
from hare.testing import Ledger, ManualClock, memory_app
from hare.transport.memory.transport import MemoryTransport
from hare.transport.reconnect import MAX_PAUSE, backoff_delay
from tests.runtime import echo_app

pytestmark = pytest.mark.anyio


def flaky(app: Hare) -> MemoryTransport:
    """A connection of the app's memory broker; `broker.refusing` makes connects fail."""
    transport = app.make_transport()
    assert isinstance(transport, MemoryTransport)
    return transport


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, rng) for n in range(40)]
    assert all(0 < d <= MAX_PAUSE for d in delays)
    assert delays[0] <= 0.1 and delays[-1] >= MAX_PAUSE / 2
    assert len({round(d, 6) for d in delays[20:]}) > 1  # jitter: a fleet does not retry in step


async def test_worker_reconnects_and_consumes_again_by_itself() -> None:
    clock = ManualClock()
    app, ledger = echo_app(clock)

    transport = flaky(app)
    worker = Worker(app, transport=transport)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    await app.asend_task("t.echo", (1,))
    await ledger.wait_for(1)

    producer = app.make_transport()  # another process's connection, which stays up
    await producer.connect()
    transport.broker.refusing = True
    await transport.sever()
    await clock.yield_control()
    assert worker.state == "reconnecting"
    _, message = app.build_message("t.echo", (2,), {}, {})
    await Publisher(producer, app.settings, clock).send("work", message)  # kept by the broker
    await clock.advance_by(5)
    assert ledger.counts() == {"echo": 1}
    transport.broker.refusing = False
    await clock.advance_by(MAX_PAUSE)
    await worker.wait_ready()
    assert worker.state == "consuming"
    await ledger.wait_for(2)
    await app.asend_task("t.echo", (3,))
    await ledger.wait_for(3)
    worker.stop()
    await running
    assert [n for _, n in ledger.runs] == [1, 2, 3]
    await producer.close()
    await app.aclose()


async def test_a_task_running_when_the_connection_died_is_not_run_again() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()
    release = asyncio.Event()

    @app.task(name="t.slow")
    async def slow() -> None:
        ledger.record("started")
        await release.wait()
        ledger.record("finished")

    transport = flaky(app)
    worker = Worker(app, transport=transport)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    await slow.adelay()
    await ledger.wait_for(1)
    await transport.sever()  # its channel dies under the running task
    await clock.advance_by(MAX_PAUSE)
    await worker.wait_ready()
    release.set()
    await ledger.wait_for(2)
    broker = transport.broker
    for _ in range(50):  # the redelivered copy is settled by the first run's outcome
        if broker.message_count("work") == 0 and broker.unsettled_count("work") == 0:
            break
        await clock.yield_control()
    worker.stop()
    await running
    # The redelivered copy waited for the run that was still going, and was acked by it.
    assert ledger.counts() == {"started": 1, "finished": 1}
    assert broker.message_count("work") == 0
    await app.aclose()


async def test_publish_during_an_outage_succeeds_when_the_broker_is_back_in_time() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work", publish_timeout=30)
    transport = flaky(app)
    publisher = Publisher(transport, app.settings, clock)
    await transport.connect()
    transport.broker.refusing = True
    await transport.sever()
    _, message = app.build_message("t.x", (), {}, {})
    sending = asyncio.create_task(publisher.send("work", message))
    await clock.advance_by(5)
    assert not sending.done()  # waiting, not failing at once, not pretending success
    transport.broker.refusing = False
    await clock.advance_by(MAX_PAUSE)
    await sending
    assert await transport.message_count("work") == 1


async def test_publish_during_a_long_outage_raises_at_the_deadline() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work", publish_timeout=30)
    transport = flaky(app)
    publisher = Publisher(transport, app.settings, clock)
    transport.broker.refusing = True
    _, message = app.build_message("t.x", (), {}, {})
    sending = asyncio.create_task(publisher.send("work", message))
    await clock.advance_by(29)
    assert not sending.done()
    await clock.advance_by(2)
    with pytest.raises(BrokerUnavailable, match="no broker connection after"):
        await sending


async def test_a_reconnect_by_someone_else_does_not_hide_the_loss() -> None:
    """A publish may reconnect the connection a worker consumes on; the worker must still
    learn that its consumers are gone, so the loss stays reported until the owner clears it."""
    app = memory_app(ManualClock(), default_queue="work")
    transport = flaky(app)
    await transport.connect()
    await transport.sever()
    await transport.connect()  # e.g. a publish of a retry reconnected it
    assert transport.is_connected
    assert transport.connection_lost.is_set()
    await transport.close()


async def test_a_worker_started_before_its_broker_waits_for_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Under docker-compose or Kubernetes the broker often starts beside the workers: the
    worker retries with the reconnect backoff, saying why each attempt failed, live but not
    ready, and consumes once the broker answers (as Celery's retry on startup)."""
    clock = ManualClock()
    app, ledger = echo_app(clock)

    transport = flaky(app)
    transport.broker.refusing = True
    worker = Worker(app, transport=transport)
    with caplog.at_level("WARNING", logger="hare.reconnect"):
        running = asyncio.create_task(worker.run())
        await clock.advance_by(3 * MAX_PAUSE)
        attempts = [r for r in caplog.records if "broker unavailable" in r.getMessage()]
    assert worker.state == "starting" and not running.done()
    assert worker.disconnected_since is not None
    assert len(attempts) >= 3  # every attempt says why
    assert all("it is 'down'" in r.getMessage() for r in attempts)
    transport.broker.refusing = False
    await clock.advance_by(MAX_PAUSE)
    await worker.wait_ready()
    assert worker.state == "consuming" and worker.disconnected_since is None
    await app.asend_task("t.echo", (1,))
    await ledger.wait_for(1)
    worker.stop()
    await running
    await app.aclose()


async def test_a_worker_stopped_while_waiting_for_its_broker_returns() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    transport = flaky(app)
    transport.broker.refusing = True
    worker = Worker(app, transport=transport)
    running = asyncio.create_task(worker.run())
    await clock.advance_by(1)
    worker.stop()
    await running
    assert worker.state == "stopped"
    await app.aclose()


async def test_without_retry_on_startup_a_missing_broker_fails_at_once() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    transport = flaky(app)
    transport.broker.refusing = True
    worker = Worker(app, transport=transport, retry_on_startup=False)
    with pytest.raises(BrokerUnavailable, match="it is 'down'"):
        await worker.run()
    await app.aclose()
