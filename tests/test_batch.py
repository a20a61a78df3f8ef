"""Sending many calls at once (`hare.batch`) on the memory broker: one outcome per call, in
order; failures in their slots while the others go out; the window bounds what is unconfirmed;
middleware runs per message; a lost connection is one reconnect, and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from hare import Call, Hare, Sent, batch
from hare.core.envelope import Envelope
from hare.core.message import Message
from hare.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DelayTooLong,
    MessageTooLarge,
    PublishNacked,
)
from hare.publisher import Publisher
from hare.testing import ManualClock, memory_app
from hare.transport.base import Transport
from hare.transport.memory.transport import MemoryTransport

pytestmark = pytest.mark.anyio


class Instrumented:
    """A memory transport whose publishes take a few loop turns, counted while unconfirmed;
    it nacks the ids in `nack` and can lose its connection at the `sever_at`-th publish."""

    def __init__(self, inner: MemoryTransport) -> None:
        self.inner = inner
        self.connection_lost = inner.connection_lost
        self.unconfirmed = self.peak = self.confirmed = self.connects = 0
        self.nack: set[str] = set()
        self.sever_at: int | None = None
        self.down_after_sever = False  # the broker then refuses connections until told

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def is_connected(self) -> bool:
        return self.inner.is_connected

    async def connect(self) -> None:
        self.connects += 1
        await self.inner.connect()

    async def publish(self, envelope: Envelope, *, mandatory: bool = True) -> None:
        self.unconfirmed += 1
        self.peak = max(self.peak, self.unconfirmed)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            if self.sever_at is not None and self.confirmed >= self.sever_at:
                self.sever_at = None
                self.inner.broker.refusing = self.down_after_sever
                await self.inner.sever()  # the publishes in flight lose their confirms
            if not self.inner.is_connected:
                raise BrokerUnavailable("connection lost")
            if envelope.properties.headers.get("id") in self.nack:
                raise PublishNacked("nacked", exchange="", routing_key=envelope.routing_key)
            await self.inner.publish(envelope, mandatory=mandatory)
            self.confirmed += 1
        finally:
            self.unconfirmed -= 1


async def setup(app: Hare) -> tuple[Instrumented, Publisher]:
    inner = app.make_transport()
    assert isinstance(inner, MemoryTransport)
    await inner.connect()
    transport = Instrumented(inner)
    publisher = Publisher(cast(Transport, transport), app.settings, app.clock, app.middleware)
    return transport, publisher


async def drain(transport: Instrumented, queue: str) -> list[Any]:
    got = []
    while (delivery := await transport.inner.get(queue)) is not None:
        got.append(delivery.properties.headers["id"])
        await transport.inner.ack(delivery)
    return got


def calls(n: int, **options: Any) -> list[Call]:
    return [Call("t.add", (i, i), {}, {"queue": "work", **options}) for i in range(n)]


async def test_outcomes_are_in_order_and_each_message_is_in_the_queue_once() -> None:
    app = memory_app()
    transport, publisher = await setup(app)
    outcomes = await batch.enqueue_many(app, publisher, calls(50), 8)
    assert all(isinstance(o, Sent) and o.queue == "work" for o in outcomes)
    ids = [cast(Sent, o).id for o in outcomes]
    assert await drain(transport, "work") == ids
    assert 1 < transport.peak <= 8  # pipelined, within the window


async def test_the_window_bounds_the_unconfirmed_publishes() -> None:
    app = memory_app()
    for window in (1, 3, 64):
        transport, publisher = await setup(app)
        await batch.enqueue_many(app, publisher, calls(40), window)
        assert transport.peak == min(window, 40)


async def test_failures_stay_in_their_slots_and_the_others_are_sent() -> None:
    app = memory_app(max_message_size=10_000)
    transport, publisher = await setup(app)
    batch_calls = calls(7)
    batch_calls[1] = Call("t.add", ("x" * 20_000,), {}, {"queue": "work"})  # too large
    batch_calls[3] = batch_calls[3].using(exchange="other")  # an option hare refuses
    batch_calls[4] = batch_calls[4].using(countdown=10**9)  # beyond the ladder
    batch_calls[6] = Call("t.add", (), {}, {"queue": "work", "task_id": "nack-me"})
    transport.nack = {"nack-me"}
    outcomes = await batch.enqueue_many(app, publisher, batch_calls, 4)
    assert isinstance(outcomes[1], MessageTooLarge)
    assert isinstance(outcomes[3], Exception) and "exchange" in str(outcomes[3])
    assert isinstance(outcomes[4], DelayTooLong)
    assert isinstance(outcomes[6], PublishNacked)
    sent = [o.id for o in outcomes if isinstance(o, Sent)]
    assert len(sent) == 3
    assert await drain(transport, "work") == sent


async def test_a_failed_build_publishes_nothing_before_every_message_is_checked() -> None:
    app = memory_app()
    transport, publisher = await setup(app)
    seen: list[int] = []

    class Counting:
        def before_publish(self, message: Message, queue: str) -> Message:
            seen.append(transport.confirmed)  # nothing confirmed before the last is checked
            return message

    app.add_middleware(Counting())
    outcomes = await batch.enqueue_many(app, publisher, calls(5), 2)
    assert seen == [0] * 5 and all(isinstance(o, Sent) for o in outcomes)


async def test_middleware_and_signals_run_once_per_message() -> None:
    from hare import signals

    app = memory_app()
    transport, publisher = await setup(app)
    events: list[tuple[str, str]] = []

    class Recording:
        def before_publish(self, message: Message, queue: str) -> Message:
            events.append(("before", message.id))
            return message

        def after_publish(self, message: Message, queue: str) -> None:
            events.append(("after", message.id))

    def announced(sender: Any = None, headers: Any = None, **_: Any) -> None:
        events.append(("signal", headers["id"]))

    app.add_middleware(Recording())
    signals.after_task_publish.connect(announced)
    try:
        batch_calls = calls(4)
        batch_calls[2] = batch_calls[2].using(exchange="other")
        outcomes = await batch.enqueue_many(app, publisher, batch_calls, 2)
    finally:
        signals.after_task_publish.disconnect(announced)
    ids = [o.id for o in outcomes if isinstance(o, Sent)]
    assert sorted(e for e in events if e[0] == "before") == sorted(("before", i) for i in ids)
    assert sorted(e for e in events if e[0] == "after") == sorted(("after", i) for i in ids)
    assert sorted(e for e in events if e[0] == "signal") == sorted(("signal", i) for i in ids)


async def test_a_lost_connection_is_one_reconnect_and_loses_nothing() -> None:
    clock = ManualClock()
    app = memory_app(clock)
    transport, publisher = await setup(app)
    transport.sever_at, transport.down_after_sever = 10, True
    running = asyncio.create_task(batch.enqueue_many(app, publisher, calls(60), 16))
    await clock.advance_by(5)  # the broker is down for 5 s: backoff, not 16 dialers
    assert transport.inner.broker.refusing and transport.connects <= 8
    transport.inner.broker.refusing = False
    while not running.done():
        await clock.advance_by(1)
    outcomes = running.result()
    assert all(isinstance(o, Sent) for o in outcomes)
    assert transport.confirmed == 60  # none lost, none twice (the lost ones never landed)
    ids = [cast(Sent, o).id for o in outcomes]
    assert sorted(await drain(transport, "work")) == sorted(ids)  # each once


async def test_the_app_methods_and_task_call() -> None:
    app = memory_app(default_queue="work")

    @app.task(name="t.add", queue="sums", priority=7)
    def add(x: int, y: int) -> int:
        return x + y

    call = add.call(2, 3)
    assert call == Call("t.add", (2, 3), {}, {"queue": "sums", "priority": 7})
    assert call.using(countdown=5).options == {"queue": "sums", "priority": 7, "countdown": 5}
    outcomes = await app.aenqueue_many([add.call(i, i) for i in range(3)], window=2)
    assert [cast(Sent, o).queue for o in outcomes] == ["sums"] * 3
    with pytest.raises(ConfigurationError, match="window"):
        await app.aenqueue_many([], window=0)
    wrong = await app.aenqueue_many([cast(Call, ("t.add", (1, 2)))])
    assert isinstance(wrong[0], TypeError)
    await app.aclose()


def test_enqueue_many_from_sync_code() -> None:
    app = Hare("t", broker="memory://", environ={}, default_queue="work")
    try:
        outcomes = app.enqueue_many([Call("t.add", (1, 2)), Call("t.add", (3, 4))])
        assert [type(o) for o in outcomes] == [Sent, Sent]
    finally:
        app.close()


async def test_a_plan_is_published_pipelined_and_its_first_failure_raised() -> None:
    from hare.canvas.plan import Plan

    app = memory_app(default_queue="work", max_message_size=10_000)
    transport, publisher = await setup(app)
    built = [app.build_message("t.add", (i, i), {}, {}) for i in range(20)]
    built[5] = app.build_message("t.add", ("x" * 20_000,), {}, {})
    plan = Plan(publish=tuple((None, message) for _, message in built))
    with pytest.raises(MessageTooLarge):
        await app._send_plan(publisher, plan)
    assert transport.peak > 1  # a group's messages are not sent one confirm at a time
    sent = [message.id for index, (_, message) in enumerate(built) if index != 5]
    assert await drain(transport, "work") == sent  # the others went out, in order


async def test_delay_many_sends_one_call_per_argument_tuple() -> None:
    app = memory_app(default_queue="work")

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    outcomes = await add.adelay_many([(1, 2), (3, 4), (5,)])
    assert [type(o) for o in outcomes] == [Sent, Sent, Sent]  # arity is the worker's to check
    publisher = await app.publisher()
    got = []
    while (delivery := await publisher.transport.get("work")) is not None:
        got.append(delivery.properties.headers["id"])
    assert got == [cast(Sent, o).id for o in outcomes]
    await app.aclose()
