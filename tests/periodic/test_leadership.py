"""Periodic v2 on the memory broker: the tick queue's single active consumer leads the
schedules, another worker takes over when it goes, and no occurrence runs twice."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import pytest

from hare import Worker
from hare.core.envelope import Delivery, Envelope
from hare.core.topology import Queue
from hare.periodic.ticks import (
    slot_name,
    tick_queue_name,
    v1_slot_name,
    v1_tick_queue_name,
)
from hare.periodic.upgrade import QUIET
from hare.transport.memory.transport import MemoryTransport
from tests.periodic.fleet import Fleet, leaders, scheduler

pytestmark = pytest.mark.anyio

SLOT = slot_name("fleet", "fleet.tick")
TICKS = tick_queue_name("fleet")


async def start_pods(fleet: Fleet, stack: AsyncExitStack, names: str) -> list[Worker]:
    return [await stack.enter_async_context(fleet.pod(fleet.app(name))) for name in names]


def consecutive(fleet: Fleet, first: int, last: int) -> bool:
    """Every occurrence from `first` to `last` (seconds after START, every 10 s) ran once."""
    return sorted(fleet.fired) == list(range(first, last + 1, 10))


async def test_one_of_four_pods_leads_and_holds_one_token() -> None:
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        pods = await start_pods(fleet, stack, "abcd")
        await fleet.clock.advance_by(130.5)  # two watchdog rounds: tokens come and go
        assert len(leaders(pods)) == 1
        assert fleet.broker.message_count(TICKS) == 0  # every other token was acked
        assert fleet.broker.unsettled_count(TICKS) == 1  # the leader's
        assert fleet.broker.message_count(SLOT) == 1
        assert sum(scheduler(p).slots.accepted for p in pods if p not in leaders(pods)) == 0
    assert consecutive(fleet, 10, 130)


async def test_when_the_leader_dies_another_pod_fires_the_next_occurrence() -> None:
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        pods = await start_pods(fleet, stack, "abc")
        await fleet.clock.advance_by(25)  # fires at 10 and 20
        (leader,) = leaders(pods)
        fleet.broker.refusing = True  # it stays away: a killed process, a lost node
        await scheduler(leader)._transport.sever()  # type: ignore[attr-defined]
        await fleet.clock.yield_control()
        (successor,) = leaders(pods)
        assert successor is not leader
        await fleet.clock.advance_by(30)  # 30, 40, 50 from the new leader
        fleet.broker.refusing = False
        await fleet.clock.advance_by(70)  # the old pod is back: a consumer in line
        assert leaders(pods) == [successor]
    assert consecutive(fleet, 10, 120)


async def test_a_leader_dying_between_offer_and_ack_leaves_no_duplicate() -> None:
    """The leader offered the next tick, then died before acking the one it fired: the next
    leader gets the tick back and fires it; the slot holds its successor already."""
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        pods = await start_pods(fleet, stack, "ab")
        await fleet.clock.advance_by(15)  # fires at 10
        (leader,) = leaders(pods)
        transport: MemoryTransport = scheduler(leader)._transport  # type: ignore[assignment]
        real_ack = transport.ack

        async def die_on_tick(delivery: Delivery) -> None:
            if delivery.queue == TICKS and delivery.properties.headers["hare-tick"] == "tick":
                fleet.broker.refusing = True
                await transport.sever()
            await real_ack(delivery)

        transport.ack = die_on_tick  # type: ignore[method-assign]
        await fleet.clock.advance_by(10)  # 20: offered 30, then died
        assert leader not in leaders(pods)
        fleet.broker.refusing = False
        assert fleet.broker.message_count(SLOT) == 1
        await fleet.clock.advance_by(30)
    assert consecutive(fleet, 10, 50)


async def test_a_second_tick_for_a_fired_occurrence_is_dropped() -> None:
    """Two copies of one occurrence's tick (a dead leader's offer landing late): one run."""
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        await start_pods(fleet, stack, "ab")
        async with MemoryTransport(fleet.broker) as admin:
            pending = await admin.get(SLOT)  # the tick of 10
            assert pending is not None
            await admin.ack(pending)
            for _ in range(2):
                copy = replace(pending.properties, expiration=None)
                envelope = Envelope(
                    exchange="", routing_key=TICKS, body=pending.body, properties=copy
                )
                await admin.publish(envelope)
        await fleet.clock.yield_control()
        await fleet.clock.advance_by(25)
    assert consecutive(fleet, 10, 20)


async def test_a_newer_deploy_takes_the_lead() -> None:
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        old = [await stack.enter_async_context(fleet.pod(fleet.app(n, generation=1))) for n in "ab"]
        await fleet.clock.advance_by(15)
        new = await stack.enter_async_context(fleet.pod(fleet.app("new", generation=2)))
        await fleet.clock.advance_by(30)
        assert leaders([*old, new]) == [new]
    assert consecutive(fleet, 10, 40)


async def test_a_leader_whose_consumer_closed_hands_over_and_consumes_again() -> None:
    """The broker closed the leader's consumer channel (a consumer_timeout): its token went to
    the next worker at once, and its next watchdog round consumes again, as a follower."""
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        pods = await start_pods(fleet, stack, "ab")
        await fleet.clock.advance_by(15)
        (leader,) = leaders(pods)
        consumer = scheduler(leader).election._consumer
        assert consumer is not None
        await consumer.close()
        await fleet.clock.yield_control()
        (successor,) = leaders(pods)
        assert successor is not leader
        await fleet.clock.advance_by(80)  # a watchdog round of the old leader
        assert scheduler(leader).election.subscribed
        assert leaders(pods) == [successor]
    assert consecutive(fleet, 10, 90)


async def test_a_stopping_leader_hands_over_at_once() -> None:
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        going = fleet.pod(fleet.app("going"))
        leader = await going.__aenter__()  # the first to consume leads
        staying = await stack.enter_async_context(fleet.pod(fleet.app("staying")))
        await fleet.clock.advance_by(15)
        assert leaders([leader, staying]) == [leader]
        await going.__aexit__(None, None, None)
        await fleet.clock.yield_control()
        assert leaders([staying]) == [staying]
        await fleet.clock.advance_by(20)
    assert consecutive(fleet, 10, 30)


async def test_v2_fires_nothing_while_v1_workers_run_then_takes_over() -> None:
    fleet = Fleet()
    async with MemoryTransport(fleet.broker) as v1:
        await v1.declare_queue(Queue(name=v1_tick_queue_name("fleet"), arguments=_QUORUM))
        await v1.declare_queue(Queue(name=v1_slot_name("fleet", "fleet.tick")))

        async def v1_worker(delivery: Delivery) -> None: ...

        consumer = await v1.consume(v1_tick_queue_name("fleet"), v1_worker, prefetch=8)
        async with AsyncExitStack() as stack:
            pods = await start_pods(fleet, stack, "ab")
            await fleet.clock.advance_by(130)
            assert len(leaders(pods)) == 1
            assert fleet.runs == []
            assert fleet.broker.message_count(SLOT) == 0  # nothing offered
            await consumer.cancel()  # the last v1 worker stopped
            await fleet.clock.advance_by(72 + QUIET + 0.5)  # the next round, then QUIET
            assert v1_tick_queue_name("fleet") not in fleet.broker.queue_names()
            assert v1_slot_name("fleet", "fleet.tick") not in fleet.broker.queue_names()
            await fleet.clock.advance_by(30)
    # Nothing fired while the v1 worker ran (up to 130 s); since the takeover, each once.
    assert fleet.fired and min(fleet.fired) > 130
    assert consecutive(fleet, min(fleet.fired), max(fleet.fired))


_QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}


async def test_a_leader_whose_renewed_token_goes_elsewhere_steps_down() -> None:
    """In a partition the broker may hand the queue to another consumer without the leader
    noticing: its renewed token then goes there, and at its next round the leader steps down."""
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        pods = await start_pods(fleet, stack, "ab")
        await fleet.clock.advance_by(15)
        (leader,) = leaders(pods)
        election = scheduler(leader).election
        renew = election._publish_token

        async def elsewhere(serial: int) -> None:
            return None  # published, but delivered to another consumer

        election._publish_token = elsewhere  # type: ignore[method-assign]
        await fleet.clock.advance_by(75)  # one round: the renewed token does not come back
        election._publish_token = renew  # type: ignore[method-assign]
        await fleet.clock.advance_by(75)  # the next round: it steps down
        (successor,) = leaders(pods)
        assert successor is not leader
        assert election.subscribed  # in line again
        await fleet.clock.advance_by(20)
    assert consecutive(fleet, 10, 180)
