"""Event fan-out on the memory transport with a manual clock: each handler gets each event
once, retries stay in the failing handler's queue, unhandled events are parked, a payload its
handler refuses is dead-lettered as `invalid-payload`."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from hare import Hare, Retry
from hare.core.envelope import Delivery
from hare.errors import ConfigurationError
from hare.events import EVENT_TASK, UNHANDLED_QUEUE
from hare.events.dispatch import handler_copy_id
from hare.events.errors import InvalidEventName
from hare.testing import Ledger, ManualClock, drain, memory_app, publish_raw, running_worker, until
from hare.transport.base import Transport

pytestmark = pytest.mark.anyio


@dataclasses.dataclass
class Payment:
    order: str
    cents: int


typed_ledger: list[Payment] = []


async def record_paid(payment: Payment) -> None:
    typed_ledger.append(payment)


async def transport_of(app: Hare) -> Transport:
    return (await app.publisher()).transport


def shop(clock: ManualClock) -> tuple[Hare, Ledger]:
    app = memory_app(clock, main="shop", default_queue="work")
    ledger = Ledger()
    failures = {"left": 2}

    @app.on("order.paid", name="shop.receipt")
    async def receipt(payment: Payment) -> None:
        ledger.record("receipt", payment)

    @app.on("order.paid", name="shop.ledger")
    def book(payment: dict) -> None:  # type: ignore[type-arg]
        ledger.record("ledger", payment["cents"])

    @app.on(
        "order.paid",
        name="shop.flaky",
        autoretry_for=(ConnectionError,),
        retry_backoff=False,
        default_retry_delay=5,
        max_retries=3,
    )
    async def flaky(payment: Payment) -> None:
        if failures["left"]:
            failures["left"] -= 1
            ledger.record("flaky-failed", payment.order)
            raise ConnectionError("downstream down")
        ledger.record("flaky", payment.order)

    return app, ledger


async def test_three_handlers_each_run_once_and_retries_rerun_only_the_failing_one() -> None:
    clock = ManualClock()
    app, ledger = shop(clock)
    ledger.bind()
    async with running_worker(app) as worker:
        assert set(worker.queues) >= {
            "work",
            "hare.ev.shop.shop.receipt",
            "hare.ev.shop.shop.flaky",
        }
        sent = await app.aemit("order.paid", Payment("A-1", 1200))
        await ledger.wait_for(3)
        await clock.advance_by(5)
        await ledger.wait_for(4)
        await clock.advance_by(5)
        await ledger.wait_for(5)
        await until(lambda: True, clock)
        transport = await transport_of(app)
        for queue in app.events.queues():
            assert await transport.message_count(queue) == 0
            assert await transport.message_count(queue + ".dead") == 0
        assert await transport.message_count(UNHANDLED_QUEUE) == 0
    assert sent.event == "order.paid"
    assert ledger.counts() == {
        "receipt": 1,
        "ledger": 1,
        "flaky-failed": 2,
        "flaky": 1,
    }
    assert ("receipt", Payment("A-1", 1200)) in ledger.runs  # built from the JSON object
    await app.aclose()


async def test_a_pattern_handler_gets_what_its_pattern_matches_and_nothing_else() -> None:
    clock = ManualClock()
    app = memory_app(clock, main="shop")
    ledger = Ledger()

    @app.on("order.*", name="shop.orders")
    async def orders(payload: str) -> None:
        ledger.record("orders", payload)

    ledger.bind()
    async with running_worker(app):
        for name in ("order.paid", "order.refunded", "order.paid.late", "invoice.sent"):
            await app.aemit(name, name)
        await ledger.wait_for(2)
        await until(lambda: True, clock)
        unhandled = await drain(await transport_of(app), UNHANDLED_QUEUE)
    assert sorted(ledger.runs) == [("orders", "order.paid"), ("orders", "order.refunded")]
    parked = [d.properties.headers["hare-event"] for d in unhandled]
    assert sorted(parked) == ["invoice.sent", "order.paid.late"]
    assert all(d.properties.headers["task"] == EVENT_TASK for d in unhandled)
    await app.aclose()


async def test_an_event_emitted_before_any_worker_is_parked_not_lost() -> None:
    clock = ManualClock()
    app = memory_app(clock, main="shop")

    @app.on("order.paid", name="shop.receipt")
    async def receipt(payment: Payment) -> None: ...

    await app.aemit("order.paid", {"order": "A", "cents": 1})
    transport = await transport_of(app)
    assert await transport.message_count(UNHANDLED_QUEUE) == 1
    async with running_worker(app, queues=["celery"]):  # declares every handler queue
        pass
    await app.aemit("order.paid", {"order": "B", "cents": 2})  # no worker runs now
    assert await transport.message_count("hare.ev.shop.shop.receipt") == 1
    await app.aclose()


async def test_an_invalid_payload_is_dead_lettered_unrun_and_the_others_still_run() -> None:
    clock = ManualClock()
    app, ledger = shop(clock)
    ledger.bind()
    async with running_worker(app):
        await app.aemit("order.paid", {"order": "A-1", "cents": "lots"})
        await ledger.wait_for(1)  # the untyped ledger handler took it
        transport = await transport_of(app)
        dead: list[Delivery] = []
        for queue in ("hare.ev.shop.shop.receipt", "hare.ev.shop.shop.flaky"):
            while not await transport.message_count(queue + ".dead"):
                await clock.yield_control(4)
            dead += await drain(transport, queue + ".dead")
    assert ledger.counts() == {"ledger": 1}
    assert [d.properties.headers["hare-dead-reason"] for d in dead] == ["invalid-payload"] * 2
    detail = dead[0].properties.headers["hare-dead-detail"]
    assert "Payment" in detail and "$.cents: expected an integer" in detail
    await app.aclose()


async def test_a_handler_queue_runs_events_and_its_handler_s_calls_and_nothing_else() -> None:
    """An event and a call naming the handler (a retry, a replay) run the handler; a task of
    another name sent there by mistake runs as itself (here: none is registered, so it is a
    dead letter `unknown-task`), never as the handler with the wrong payload."""
    clock = ManualClock()
    app = memory_app(clock, main="shop")
    ledger = Ledger()
    seen: list[str] = []

    @app.on("order.paid", name="shop.receipt")
    async def receipt(payment: Payment) -> None:
        from hare.context import current

        context = current()
        assert context is not None
        seen.append(context.message.id)
        ledger.record("receipt", payment.order)

    ledger.bind()
    body = json.dumps([[{"order": "R", "cents": 1}], {}, {}]).encode()
    queue = "hare.ev.shop.shop.receipt"
    async with running_worker(app):
        transport = await transport_of(app)
        await publish_raw(transport, queue, body, headers={"task": "other.name", "id": "x0"})
        await publish_raw(transport, queue, body, headers={"task": "shop.receipt", "id": "x1"})
        await publish_raw(transport, queue, body, headers={"task": EVENT_TASK, "id": "ev1"})
        await ledger.wait_for(2)
        dead = await drain(transport, queue + ".dead")
    assert ledger.runs == [("receipt", "R"), ("receipt", "R")]
    assert seen == ["x1", handler_copy_id("ev1", queue)]
    assert [d.properties.headers["hare-dead-reason"] for d in dead] == ["unknown-task"]
    await app.aclose()


def test_a_handler_cannot_take_a_task_queue() -> None:
    app = memory_app(main="shop", default_queue="work")

    @app.task(name="shop.send_mail", queue="emails")
    def send_mail(to: str) -> None: ...

    for taken in ("emails", "work"):
        with pytest.raises(ConfigurationError, match=f"queue {taken!r} is a task queue"):

            @app.on("order.paid", name="shop.handler", queue=taken)
            def handler(payload: dict[str, Any]) -> None: ...


async def test_an_event_and_its_retries_carry_no_priority_whatever_the_default() -> None:
    """A handler queue has no band: with default_priority=5, a retry went to
    `<handler queue>.high`, which no worker consumes."""
    clock = ManualClock()
    app = memory_app(clock, main="shop", default_priority=5)
    ledger = Ledger()
    ledger.bind()

    @app.on("order.paid", name="shop.flaky", max_retries=1)
    async def flaky(payload: dict[str, Any]) -> None:
        ledger.record("flaky", len(ledger.runs))
        if len(ledger.runs) == 1:
            raise Retry(countdown=1)

    async with running_worker(app):
        await app.aemit("order.paid", {"n": 1})
        await ledger.wait_for(1)
        await clock.advance_by(1)
        await ledger.wait_for(2)
    assert ledger.counts()["flaky"] == 2
    await app.aclose()


async def test_a_typed_event_emits_and_handles_its_payload_type() -> None:
    clock = ManualClock()
    app = memory_app(clock, main="shop")
    ledger = Ledger()
    paid = app.event("order.paid", Payment)
    typed_ledger.clear()
    on_paid = paid.handler(record_paid)  # the bare form: a module-level function

    @paid.handler(name="shop.audit", max_retries=0)
    def audit(payment: Payment) -> None:
        ledger.record("audit", payment.cents)

    ledger.bind()
    async with running_worker(app):
        await paid.aemit(Payment("A", 5))
        await ledger.wait_for(1)
        await until(lambda: bool(typed_ledger), clock)
    assert ledger.runs == [("audit", 5)]
    assert typed_ledger == [Payment("A", 5)]
    assert on_paid.name == "tests.events.test_fanout.record_paid"
    assert app.events.queues()[0] == "hare.ev.shop.tests.events.test_fanout.record_paid"
    await app.aclose()


def test_handler_copies_have_ids_of_their_own_stable_across_redeliveries() -> None:
    assert handler_copy_id("e", "q1") == handler_copy_id("e", "q1")
    assert handler_copy_id("e", "q1") != handler_copy_id("e", "q2")


def test_registration_and_emit_errors_are_named() -> None:
    app = memory_app(main="shop")

    @app.on("order.paid", queue="custom", name="shop.one")
    def one(payload: object) -> None: ...

    assert app.events.queues() == ["custom"]
    with pytest.raises(ConfigurationError, match="two event handlers use queue"):
        app.on("order.refunded", queue="custom", name="shop.two")(lambda p: None)
    with pytest.raises(InvalidEventName):
        app.on("order.p*")(one)
    with pytest.raises(InvalidEventName, match="wildcard"):
        app.emit("order.*", {})
    with pytest.raises(InvalidEventName):
        app.event("order.#", dict)


async def test_a_worker_given_queues_consumes_only_those() -> None:
    app = memory_app(main="shop")

    @app.on("order.paid", name="shop.receipt")
    async def receipt(payment: Payment) -> None: ...

    async with running_worker(app, queues=["celery"]) as worker:
        assert worker.queues == ("celery",)
    async with running_worker(app) as worker:
        assert worker.queues == ("default", "hare.ev.shop.shop.receipt")
    await app.aclose()


async def test_middleware_sees_an_emitted_event_and_its_handlers_runs() -> None:
    from hare.context import current
    from hare.core.message import Message
    from hare.middleware import Middleware
    from hare.worker.request import Request

    seen: list[tuple[str, str]] = []

    class Trace(Middleware):
        def before_publish(self, message: Message, queue: str) -> Message | None:
            seen.append(("publish", queue))
            return dataclasses.replace(message, headers={**message.headers, "trace": "t1"})

        def before_run(self, request: Request) -> None:
            seen.append(("run", request.task))

    clock = ManualClock()
    app = memory_app(clock, main="shop", middleware=[Trace()])
    traces: list[object] = []

    @app.on("order.paid", name="shop.receipt")
    async def receipt(payment: Payment) -> None:
        context = current()
        assert context is not None
        traces.append(context.message.headers.get("trace"))

    async with running_worker(app):
        await app.aemit("order.paid", Payment("A", 1))
        await until(lambda: bool(traces), clock)
    assert traces == ["t1"]
    assert seen == [("publish", "hare.events"), ("run", "shop.receipt")]
    await app.aclose()
