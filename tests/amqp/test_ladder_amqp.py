"""The delay ladder on a real RabbitMQ, including the two traps that silently lose messages."""

from __future__ import annotations

import asyncio
import time

import pytest

from hare import Retry
from hare.cli import ladder_view
from hare.core import ladder
from hare.core.envelope import Envelope, Properties
from hare.core.topology import DEAD_SUFFIX
from hare.testing import Ledger, eventually, running_worker
from hare.transport.base import Transport
from tests.amqp.helpers import amqp_app, delete_queues, take_all

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]


async def test_a_task_retried_five_times_through_the_ladder_still_arrives(
    amqp_url: str, unique: str
) -> None:
    """The x-death trap: a republished message that kept its death headers is dropped by
    RabbitMQ 3.10's cycle detection the second time it crosses the same level."""
    queue = f"retry-{unique}"
    app = amqp_app(amqp_url, default_queue=queue)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.flaky", max_retries=5)
    async def flaky() -> None:
        attempt = len(ledger.runs)
        ledger.record("flaky", time.time())
        if attempt < 5:
            raise Retry(countdown=0.3)  # 3 units: levels 1 and 0, the same two every time

    try:
        async with running_worker(app, queues=[queue]):
            await flaky.adelay()
            await ledger.wait_for(6, within=30)
        times = [t for _, t in ledger.runs]
        assert len(times) == 6
        assert all(
            later - earlier >= 0.29 for earlier, later in zip(times, times[1:], strict=False)
        )
    finally:
        await delete_queues((await app.publisher()).transport, queue, queue + DEAD_SUFFIX)
        await app.aclose()


async def test_unroutable_delayed_messages_are_parked_and_do_not_jam_the_ladder(
    amqp_url: str, unique: str
) -> None:
    """The jam trap: 32+ unroutable at-least-once dead letters block a level for everyone
    unless the ladder's exchanges have an alternate exchange."""
    queue = f"jam-{unique}"
    app = amqp_app(amqp_url, default_queue=queue)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.on_time")
    async def on_time(due: float) -> None:
        ledger.record("on_time", time.time() - due)

    try:
        async with running_worker(app, queues=[queue]):
            publisher = await app.publisher()
            transport = publisher.transport
            await publisher.ensure_ladder()
            route = ladder.route(0.5, f"nobody-{unique}")  # no queue is bound for it
            assert route is not None
            for n in range(40):
                await transport.publish(
                    Envelope(
                        exchange=route.exchange,
                        routing_key=route.routing_key,
                        body=b"lost?",
                        properties=Properties(headers={"jam-test": unique, "n": n}),
                    )
                )
            for _ in range(5):
                await on_time.aapply_async((time.time() + 0.5,), countdown=0.5)
            await ledger.wait_for(5, within=20)
            lateness = [late for _, late in ledger.runs]
            assert all(-0.05 < late < 5 for late in lateness), lateness

            async def parked() -> list[int] | None:
                found = []
                for delivery in await take_all(transport, ladder.PARKING_QUEUE):
                    if delivery.properties.headers.get("jam-test") == unique:
                        found.append(delivery.properties.headers["n"])
                    else:  # not ours: put it back
                        await transport.publish(
                            Envelope(
                                exchange="",
                                routing_key=ladder.PARKING_QUEUE,
                                body=delivery.body,
                                properties=delivery.properties,
                            )
                        )
                parked_so_far.extend(found)
                return parked_so_far if len(parked_so_far) >= 40 else None

            parked_so_far: list[int] = []
            assert sorted(await eventually(parked, within=20, interval=0.2)) == list(range(40))
    finally:
        await delete_queues((await app.publisher()).transport, queue, queue + DEAD_SUFFIX)
        await app.aclose()


async def test_queues_b_and_a_dot_b_never_receive_each_others_delayed_messages(
    amqp_url: str, unique: str
) -> None:
    short, dotted = f"b{unique}", f"a.b{unique}"
    app = amqp_app(amqp_url)
    publisher = await app.publisher()
    transport = publisher.transport
    try:
        for queue in (short, dotted):
            await publisher.ensure_delay_target(queue)
        await app.asend_task("t.x", ["for-short"], queue=short, countdown=0.3)
        await app.asend_task("t.x", ["for-dotted"], queue=dotted, countdown=0.3)
        got: dict[str, list[str]] = {short: [], dotted: []}

        async def both_arrived() -> bool:
            for queue in got:
                for delivery in await take_all(transport, queue):
                    got[queue].append(delivery.body.decode())
            return all(got.values())

        await eventually(both_arrived, within=20)
        await asyncio.sleep(1)  # give a misrouted copy time to show up
        await both_arrived()
        assert [("for-short" in body) for body in got[short]] == [True]
        assert [("for-dotted" in body) for body in got[dotted]] == [True]
    finally:
        await delete_queues(transport, short, dotted, short + DEAD_SUFFIX, dotted + DEAD_SUFFIX)
        await app.aclose()


async def test_a_worker_holds_nothing_while_tasks_wait_in_the_ladder(
    amqp_url: str, unique: str
) -> None:
    queue = f"hold-{unique}"
    app = amqp_app(amqp_url, default_queue=queue)

    @app.task(name="t.later")
    async def later() -> None: ...

    try:
        async with running_worker(app, queues=[queue]) as worker:
            transport = (await app.publisher()).transport
            await asyncio.gather(*(later.aapply_async(countdown=3600) for _ in range(200)))
            await asyncio.sleep(0.5)
            assert await transport.message_count(queue) == 0
            assert worker.in_flight == 0  # nothing received, nothing held unacked
            assert worker.processed == 0
    finally:
        await delete_queues((await app.publisher()).transport, queue, queue + DEAD_SUFFIX)
        await app.aclose()


async def test_browsing_the_ladder_never_sends_a_message_on_early(
    amqp_url: str, unique: str
) -> None:
    # Each `hare delayed` takes and hands back: a delivery to a quorum queue. With 4.x's
    # default limit of 20, the 21st browse dead-lettered it down the ladder before its time.
    queue = f"browse-{unique}"
    app = amqp_app(amqp_url, default_queue=queue)

    @app.task(name="t.later")
    async def later() -> None: ...

    try:
        result = await later.aapply_async(countdown=3600)
        for _ in range(25):
            read, _ = await ladder_view.browse(app, limit=None, stop=lambda d: d.id == result.id)
            assert read[-1].id == result.id and read[-1].place == ladder.level_name(15)
        transport = (await app.publisher()).transport
        assert await transport.message_count(queue) == 0  # still waiting, not delivered early
    finally:
        await delete_queues((await app.publisher()).transport, queue, queue + DEAD_SUFFIX)
        await app.aclose()


async def test_expires_is_also_enforced_by_the_broker(amqp_url: str, unique: str) -> None:
    """With no worker at all, RabbitMQ drops the message once `expires` passed."""
    queue = f"exp-{unique}"
    app = amqp_app(amqp_url)
    transport = (await app.publisher()).transport
    try:
        await app.asend_task("t.x", queue=queue, expires=0.3)
        await app.asend_task("t.x", queue=queue)
        assert await transport.message_count(queue) == 2
        await eventually(lambda: _count_is(transport, queue, 1), within=10)
    finally:
        await delete_queues(transport, queue, queue + DEAD_SUFFIX)
        await app.aclose()


async def _count_is(transport: Transport, queue: str, n: int) -> bool:
    return await transport.message_count(queue) == n
