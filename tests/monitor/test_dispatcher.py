"""The event dispatcher never makes its caller wait: it queues, one task sends; a broker that
is away costs events (counted), never a stall; a full queue drops its oldest."""

from __future__ import annotations

import asyncio
import json

import pytest

from hare.core.envelope import Envelope
from hare.core.topology import Exchange
from hare.errors import BrokerUnavailable
from hare.monitor.dispatcher import RETRY_SECONDS, EventDispatcher
from hare.testing import ManualClock, until

pytestmark = pytest.mark.anyio


class Broker:
    """A transport that publishes into a list, or fails while `away`; `hold` blocks publishes
    until released."""

    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.exchanges: list[Exchange] = []
        self.away = False
        self.hold: asyncio.Event | None = None

    async def declare_exchange(self, exchange: Exchange) -> None:
        if self.away:
            raise BrokerUnavailable("connection lost")
        self.exchanges.append(exchange)

    async def publish(self, envelope: Envelope, *, mandatory: bool = True) -> None:
        assert mandatory is False  # no queue bound is fine: nobody monitors
        if self.hold is not None:
            await self.hold.wait()
        if self.away:
            raise BrokerUnavailable("connection lost")
        self.published.append(envelope)

    def types(self) -> list[str]:
        return [json.loads(e.body)["type"] for e in self.published]


def dispatcher(broker: Broker, clock: ManualClock, limit: int = 10_000) -> EventDispatcher:
    return EventDispatcher(
        broker,  # type: ignore[arg-type]
        "w1@host",
        clock=clock,
        limit=limit,
        pid=42,
        offset=lambda: -1.0,
    )


async def test_send_returns_at_once_while_the_broker_is_slow() -> None:
    clock, broker = ManualClock(), Broker()
    broker.hold = asyncio.Event()
    events = dispatcher(broker, clock)
    events.start()
    for n in range(1000):
        events.send("task-started", uuid=str(n))  # returns: nothing waits for the broker
    assert broker.published == []
    broker.hold.set()
    await until(lambda: events.sent == 1000, clock)
    assert events.sent == 1000 and events.dropped == 0
    first = json.loads(broker.published[0].body)
    assert first == {
        "hostname": "w1@host",
        "utcoffset": -1.0,
        "pid": 42,
        "clock": 1,
        "uuid": "0",
        "timestamp": clock.time(),
        "type": "task-started",
    }
    assert broker.exchanges == [Exchange(name="celeryev", type="topic", durable=True)]
    await events.close()


async def test_a_full_queue_drops_its_oldest_events() -> None:
    clock, broker = ManualClock(), Broker()
    events = dispatcher(broker, clock, limit=3)  # not started: nothing is sent yet
    for n in range(5):
        events.send("task-started", uuid=str(n))
    assert events.pending == 3 and events.dropped == 2
    events.start()
    await until(lambda: len(broker.published) == 3, clock)
    assert [json.loads(e.body)["uuid"] for e in broker.published] == ["2", "3", "4"]
    await events.close()


async def test_while_the_broker_is_away_events_are_dropped_then_sent_again() -> None:
    clock, broker = ManualClock(), Broker()
    events = dispatcher(broker, clock)
    events.start()
    broker.away = True
    events.send("worker-heartbeat")
    await until(lambda: events.dropped == 1, clock)
    events.send("task-received", uuid="a")  # waits in the queue while the sender pauses
    await clock.yield_control()
    assert events.pending == 1
    broker.away = False
    await clock.advance_by(RETRY_SECONDS)
    await until(lambda: broker.types() == ["task-received"], clock)
    assert broker.exchanges  # declared again after the loss
    await events.close()


async def test_close_sends_what_is_queued_and_then_nothing() -> None:
    clock, broker = ManualClock(), Broker()
    events = dispatcher(broker, clock)
    events.start()
    events.send("task-succeeded", uuid="a", result="1", runtime=0.1)
    events.send("worker-offline")
    await events.close()
    assert broker.types() == ["task-succeeded", "worker-offline"]
    events.send("worker-heartbeat")
    assert events.pending == 0


async def test_close_gives_up_on_a_broker_that_never_answers() -> None:
    clock, broker = ManualClock(), Broker()
    broker.hold = asyncio.Event()  # never set
    events = dispatcher(broker, clock)
    events.start()
    events.send("worker-offline")
    closing = asyncio.ensure_future(events.close(grace=5.0))
    await clock.yield_control()
    assert not closing.done()
    await clock.advance_by(5.0)
    await until(closing.done, clock)
    assert broker.published == []
