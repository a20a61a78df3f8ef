"""The worker on the memory transport with a manual clock: outcomes, dead letters, delays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hare import Hare, Reject, Retry
from hare.core.envelope import Delivery
from hare.errors import ConfigurationError, NotSupportedError
from hare.testing import Ledger, ManualClock, drain, memory_app, publish_raw, running_worker, until
from hare.transport.base import Transport
from tests.runtime import BAD_INPUTS, GOOD_BODY

pytestmark = pytest.mark.anyio


def make_app(clock: ManualClock | None = None):
    clock = clock or ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        ledger.record("add", x + y)
        return x + y

    @app.task(name="t.echo")
    async def echo(value: object) -> object:
        ledger.record("echo", value)
        return value

    @app.task(name="t.boom")
    async def boom() -> None:
        ledger.record("boom")
        raise ValueError("kaboom")

    @app.task(name="t.refuse")
    async def refuse(order: str) -> None:
        ledger.record("refuse")
        raise Reject(f"order {order} does not exist")

    return app, clock, ledger, add, echo


async def transport_of(app: Hare) -> Transport:
    return (await app.publisher()).transport


async def test_async_and_sync_tasks_run_and_are_acked() -> None:
    app, clock, ledger, add, echo = make_app()
    ledger.bind()
    async with running_worker(app):
        await add.adelay(2, 3)
        await echo.adelay({"when": datetime(2030, 1, 2, tzinfo=UTC)})
        await ledger.wait_for(2)
        transport = await transport_of(app)
        await until(lambda: True, clock)
        assert await transport.message_count("work") == 0
    assert sorted(ledger.runs, key=str) == sorted(
        [("add", 5), ("echo", {"when": datetime(2030, 1, 2, tzinfo=UTC)})], key=str
    )


async def test_each_kind_of_bad_input_is_dead_lettered_and_a_good_one_still_runs() -> None:
    app, clock, ledger, add, echo = make_app()
    ledger.bind()
    ok = {"task": "t.add", "id": "good"}
    bad = BAD_INPUTS
    async with running_worker(app):
        transport = await transport_of(app)
        for n, (_reason, body, headers, content_type) in enumerate(bad, start=1):
            await publish_raw(transport, "work", body, headers=headers, content_type=content_type)
            await publish_raw(transport, "work", GOOD_BODY, headers={**ok, "id": f"good{n}"})
            await ledger.wait_for(n)
        await add.adelay(1, 1)
        await ledger.wait_for(len(bad) + 1)
        await until(lambda: True, clock)
        dead = await drain(transport, "work.dead")
    assert [d.properties.headers["hare-dead-reason"] for d in dead] == [r for r, *_ in bad]
    assert all(d.properties.headers["hare-dead-queue"] == "work" for d in dead)
    assert all(d.properties.headers["hare-dead-detail"] for d in dead)
    assert dead[0].body == b"not json at all"  # the body is kept as it arrived
    assert ledger.counts() == {"add": len(bad) + 1}


async def test_failure_and_reject_are_dead_lettered_with_their_details() -> None:
    app, clock, ledger, *_ = make_app()
    ledger.bind()
    async with running_worker(app):
        await app.asend_task("t.boom")
        await app.asend_task("t.refuse", ["o-1"])
        await ledger.wait_for(2)
        transport = await transport_of(app)
        await until(lambda: False if not ledger.runs else True, clock)
        dead: list[Delivery] = []
        for _ in range(50):
            dead += await drain(transport, "work.dead")
            if len(dead) == 2:
                break
            await clock.yield_control()
    by_task = {d.properties.headers["task"]: d.properties.headers for d in dead}
    failed, rejected = by_task["t.boom"], by_task["t.refuse"]
    assert failed["hare-dead-reason"] == "failed"
    assert failed["hare-dead-exception"] == "ValueError"
    assert failed["hare-dead-detail"] == "kaboom"
    assert "raise ValueError" in failed["hare-dead-traceback"]
    assert failed["hare-dead-attempts"] == 1
    assert rejected["hare-dead-reason"] == "rejected"
    assert rejected["hare-dead-detail"] == "order o-1 does not exist"
    assert ledger.counts() == {"boom": 1, "refuse": 1}


async def test_expired_message_is_discarded_without_running() -> None:
    app, clock, ledger, add, _ = make_app()
    ledger.bind()
    async with running_worker(app):
        past = datetime.fromtimestamp(clock.time() - 5, UTC)
        await add.aapply_async((1, 2), expires=past)
        await add.aapply_async((3, 4))
        await ledger.wait_for(1)
        transport = await transport_of(app)
        await until(lambda: True, clock)
        assert await transport.message_count("work") == 0
        assert await transport.message_count("work.dead") == 0
    assert ledger.runs == [("add", 7)]


async def test_countdown_waits_in_the_ladder_not_in_the_worker() -> None:
    clock = ManualClock()
    app, clock, ledger, add, echo = make_app(clock)
    ledger.bind()
    async with running_worker(app):
        await echo.aapply_async(("later",), countdown=30)
        await echo.aapply_async(("soon",), countdown=0.25)
        await clock.advance_by(0.2)
        assert ledger.runs == []  # 2 units in the ladder
        await clock.advance_by(0.06)  # the 50 ms remainder waits in the worker
        await ledger.wait_for(1)
        assert ledger.runs == [("echo", "soon")]
        await clock.advance_by(29)
        assert ledger.runs == [("echo", "soon")]
        await clock.advance_by(1)
        await ledger.wait_for(2)
    assert ledger.runs == [("echo", "soon"), ("echo", "later")]


async def test_explicit_retry_goes_through_the_ladder_with_celery_semantics() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()
    seen: list[tuple[int, str]] = []

    @app.task(name="t.flaky", max_retries=5)
    async def flaky() -> None:
        attempt = len(ledger.runs)
        ledger.record("flaky", attempt)
        if attempt < 5:
            raise Retry(countdown=10)

    async with running_worker(app):
        publisher = await app.publisher()  # on the worker's loop: the worker's own
        original = publisher.send

        async def spy(queue: str, message, **options):
            seen.append((message.retries, message.parent_id))
            await original(queue, message, **options)

        publisher.send = spy  # type: ignore[method-assign]
        sent = await flaky.adelay()
        await ledger.wait_for(1)
        for n in range(2, 7):
            await clock.advance_by(10)
            await ledger.wait_for(n)
    assert [v for _, v in ledger.runs] == [0, 1, 2, 3, 4, 5]
    # the first send is the caller's; every retry keeps the id and names it as parent
    assert seen == [(0, None)] + [(n, sent.id) for n in range(1, 6)]


async def test_autoretry_with_backoff_then_dead_letter_when_exhausted() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")
    ledger = Ledger()
    ledger.bind()

    @app.task(
        name="t.partner",
        max_retries=2,
        retry_backoff=2.0,
        retry_jitter=False,
        autoretry_for=(ConnectionError,),
    )
    async def partner() -> None:
        ledger.record("partner", clock.time())
        raise ConnectionError("partner down")

    async with running_worker(app):
        start = clock.time()
        await partner.adelay()
        await ledger.wait_for(1)
        await clock.advance_by(2)  # 2 * 2**0
        await ledger.wait_for(2)
        await clock.advance_by(4)  # 2 * 2**1
        await ledger.wait_for(3)
        transport = await transport_of(app)
        for _ in range(50):
            if await transport.message_count("work.dead"):
                break
            await clock.yield_control()
        dead = await drain(transport, "work.dead")
    assert [round(t - start, 3) for _, t in ledger.runs] == [0, 2, 6]
    assert len(dead) == 1
    headers = dead[0].properties.headers
    assert headers["hare-dead-reason"] == "retries-exhausted"
    assert headers["hare-dead-exception"] == "ConnectionError"
    assert headers["hare-dead-attempts"] == 3
    assert headers["retries"] == 2


async def test_a_message_far_too_early_goes_back_through_the_ladder() -> None:
    """A Celery producer puts an ETA an hour ahead straight on the queue: not held."""
    app, clock, ledger, *_ = make_app()
    ledger.bind()
    eta = datetime.fromtimestamp(clock.time(), UTC) + timedelta(hours=1)
    async with running_worker(app):
        transport = await transport_of(app)
        await publish_raw(
            transport,
            "work",
            GOOD_BODY,
            headers={"task": "t.add", "id": "e1", "eta": eta.isoformat()},
        )
        await clock.yield_control()
        assert await transport.message_count("work") == 0  # acked, not held
        await clock.advance_by(3599)
        assert ledger.runs == []
        await clock.advance_by(1.1)
        await ledger.wait_for(1)
    assert ledger.runs == [("add", 3)]


async def test_a_delay_beyond_the_ladder_is_refused_at_publish() -> None:
    app, _, _, add, _ = make_app()
    from hare.errors import DelayTooLong

    with pytest.raises(DelayTooLong):
        await add.aapply_async((1, 2), countdown=20 * 365 * 24 * 3600)


async def test_unknown_options_are_named_errors() -> None:
    app, _, _, add, _ = make_app()
    with pytest.raises(NotSupportedError) as caught:
        await add.aapply_async((1, 2), exchange="x")
    assert caught.value.option == "exchange"


async def test_a_link_that_is_not_a_signature_is_a_clear_error() -> None:
    app, _, _, add, _ = make_app()
    with pytest.raises(ConfigurationError, match="link= takes signatures"):
        await add.aapply_async((1, 2), link="x")


async def test_message_on_the_wire_is_celery_protocol_v2() -> None:
    app, clock, _, add, _ = make_app()
    transport = await transport_of(app)
    await add.aapply_async((2, 3), task_id="my-id", headers={"trace": "x"})
    delivery = await transport.get("work")
    assert delivery is not None
    headers = delivery.properties.headers
    assert headers["task"] == "t.add" and headers["id"] == "my-id"
    assert headers["trace"] == "x" and headers["root_id"] == "my-id"
    assert json.loads(delivery.body) == [
        [2, 3],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]
    await app.aclose()


async def test_eta_header_delays_publish_at_once_with_celerys_eta_header() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work", delays="eta-header")

    @app.task(name="t.later")
    async def later() -> None:
        return None

    await later.aapply_async(countdown=3600)
    transport = await transport_of(app)
    delivery = await transport.get("work")
    assert delivery is not None, "published straight to the queue, not into the ladder"
    eta = datetime.fromisoformat(delivery.properties.headers["eta"])
    assert eta == datetime.fromtimestamp(clock.time() + 3600, UTC)


class _EarlyTimers:
    """A manual clock whose sleeps longer than 1 ms end 1 ms early, as uvloop's timers
    (millisecond resolution) were seen to: 72 of 300 sleeps, by up to 0.94 ms."""

    def __init__(self, clock: ManualClock) -> None:
        self.manual = clock

    def time(self) -> float:
        return self.manual.time()

    def monotonic(self) -> float:
        return self.manual.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.manual.sleep(seconds - 0.001 if seconds > 0.001 else seconds)


async def test_a_task_never_starts_before_its_eta_when_a_timer_fires_early() -> None:
    clock = _EarlyTimers(ManualClock())
    app = Hare("tests", broker="memory://", clock=clock, environ={}, default_queue="work")
    started: list[float] = []

    @app.task(name="t.when")
    async def when() -> None:
        started.append(clock.time())

    async with running_worker(app):
        due = clock.time() + 0.15  # under a ladder unit plus its lead: held by the worker
        await when.aapply_async(countdown=0.15)
        await clock.manual.advance_by(0.2)
        await until(lambda: bool(started), clock.manual)
    assert started[0] >= due - 1e-6  # the ETA travels in microseconds
