"""Beat-less periodic tasks on the memory transport with a manual clock: several worker
"pods" share one broker and every occurrence runs once."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from unittest import mock

import pytest

from hare import Hare, Worker
from hare.core.envelope import Delivery
from hare.periodic.schedules import every
from hare.periodic.ticks import occurrence_task_id, slot_name
from hare.transport.memory.transport import MemoryTransport
from tests.periodic.fleet import START, Fleet

pytestmark = pytest.mark.anyio


async def test_one_pod_fires_each_occurrence_once() -> None:
    fleet = Fleet()
    async with fleet.pod(fleet.app("a")):
        assert fleet.broker.message_count(slot_name("fleet", "fleet.tick")) == 1
        await fleet.clock.advance_by(60.5)
    assert sorted(fleet.occurrences()) == [10, 20, 30, 40, 50, 60]
    assert max(fleet.occurrences().values()) == 1


async def test_four_pods_fire_each_occurrence_exactly_once() -> None:
    fleet = Fleet()
    async with AsyncExitStack() as stack:
        for pod in "abcd":
            await stack.enter_async_context(fleet.pod(fleet.app(pod)))
        assert fleet.broker.message_count(slot_name("fleet", "fleet.tick")) == 1
        await fleet.clock.advance_by(120.5)  # two watchdog rounds on every pod, too
    occurrences = fleet.occurrences()
    assert sorted(occurrences) == list(range(10, 121, 10))
    assert set(occurrences.values()) == {1}


async def test_each_occurrence_has_a_deterministic_task_id() -> None:
    assert occurrence_task_id("fleet", "fleet.tick", 1_800_000_010_000) == occurrence_task_id(
        "fleet", "fleet.tick", 1_800_000_010_000
    )
    assert occurrence_task_id("fleet", "fleet.tick", 1) != occurrence_task_id(
        "fleet", "fleet.tick", 2
    )


async def test_no_overlap_waits_for_the_previous_run() -> None:
    fleet = Fleet()
    app = Hare("fleet", broker="memory://", clock=fleet.clock, environ={}, default_queue="work")
    spans: list[tuple[float, float]] = []

    @app.periodic(every(seconds=10), name="fleet.slow", overlap=False)
    async def slow() -> None:
        began = fleet.clock.time()
        await fleet.clock.sleep(25)  # longer than the period
        spans.append((began - START, fleet.clock.time() - START))

    async with fleet.pod(app):
        await fleet.clock.advance_by(100)
    assert len(spans) >= 2
    for (_, ended), (began, _) in zip(spans, spans[1:], strict=False):
        assert began >= ended  # never two runs at once


async def test_a_deploy_with_a_new_spec_replaces_the_pending_tick() -> None:
    fleet = Fleet()
    async with fleet.pod(fleet.app("old", interval=10, generation=1)):
        await fleet.clock.advance_by(20.5)  # fires at 10 and 20
        async with fleet.pod(fleet.app("new", interval=5, generation=2)):
            # long enough for the old pod to carry the new spec's ticks and to run its
            # watchdog several times: it must not revert the spec
            await fleet.clock.advance_by(300)
    late = sorted(t for t in fleet.occurrences() if t > 40)
    assert late and all(t % 5 == 0 for t in late)
    assert any(t % 10 == 5 for t in late)  # the 5 s spec is firing
    assert all(b - a == 5 for a, b in zip(late, late[1:], strict=False))  # and never reverted


async def test_a_deploy_that_finds_the_slot_empty_looks_again_at_once() -> None:
    """The race of a deploy: the slot was full when the new pod offered, and empty when it
    looked a moment later (the old tick expired in between and another pod is firing it)."""
    fleet = Fleet()
    transport = MemoryTransport(fleet.broker, clock=fleet.clock)
    looks: list[str] = []
    real_get = transport.get

    async def get(queue: str) -> Delivery | None:
        looks.append(queue)
        if queue == slot_name("fleet", "fleet.tick") and len(looks) == 1:
            return None
        return await real_get(queue)

    async with fleet.pod(fleet.app("old", interval=10, generation=1)):
        await fleet.clock.advance_by(20.5)  # fires at 10 and 20; pending: 30
        new = Worker(
            fleet.app("new", interval=5, generation=2), transport=transport, drain_timeout=0
        )
        with mock.patch.object(transport, "get", get):
            running = asyncio.create_task(new.run())
            await new.wait_ready()
            try:
                await fleet.clock.advance_by(5)
            finally:
                new.stop()
                await running
    # the watchdog (every 48-72 s here) did not wait a round: the 5 s spec fired at 25
    assert len(looks) >= 2
    assert sorted(fleet.occurrences()) == [10, 20, 25]


async def test_a_schedule_removed_from_the_code_is_retired() -> None:
    fleet = Fleet()
    async with fleet.pod(fleet.app("old", generation=1)):
        await fleet.clock.advance_by(5)
    plain = Hare(
        "fleet",
        broker="memory://",
        clock=fleet.clock,
        environ={},
        default_queue="work",
        generation=2,
    )

    @plain.task(name="fleet.other")
    async def other() -> None: ...

    plain.add_periodic("fleet.other", every(seconds=30), task=other)
    async with fleet.pod(plain):
        await fleet.clock.advance_by(12)  # the old tick expires and reaches the new pod
    assert slot_name("fleet", "fleet.tick") not in fleet.broker.queue_names()
    assert fleet.runs == []


async def test_occurrences_missed_while_no_worker_ran_are_skipped() -> None:
    fleet = Fleet()
    async with fleet.pod(fleet.app("a")):
        await fleet.clock.advance_by(10.5)  # runs at 10
    await fleet.clock.advance_by(300)  # everything down for five minutes
    async with fleet.pod(fleet.app("b")):
        await fleet.clock.advance_by(20)
    occurrences = sorted(fleet.occurrences())
    assert occurrences[0] == 10
    assert all(t > 300 for t in occurrences[1:])  # the stale tick (at 20) was skipped
