"""Periodic ticks on a real RabbitMQ: the broker, not the pods, keeps one tick per schedule."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest

from hare.clock import SystemClock
from hare.core.settings import Settings
from hare.periodic.scheduler import Scheduler
from hare.periodic.schedules import Periodic, every
from hare.periodic.ticks import slot_name, slot_queue, tick_queue_name
from hare.publisher import Publisher
from hare.transport.amqp.transport import AmqpTransport

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]


async def test_eight_pods_starting_at_once_leave_exactly_one_pending_tick(
    amqp_url: str, unique: str
) -> None:
    app = f"boot{unique}"
    entry = Periodic(name="sched", schedule=every(minutes=1), task="t.x", queue="unused")
    settings = Settings.resolve({"broker_url": amqp_url}, {})
    pods = [AmqpTransport(amqp_url, name=f"pod{i}") for i in range(8)]
    schedulers = [
        Scheduler(
            app,
            {"sched": entry},
            Publisher(pod, settings, SystemClock()),
            clock=SystemClock(),
            rng=random.Random(i),
        )
        for i, pod in enumerate(pods)
    ]
    for pod in pods:
        await pod.connect()
    admin = pods[0]
    depths = []
    try:
        await admin.declare_queue(slot_queue(app, "sched"))
        for _ in range(20):
            await admin.purge(slot_name(app, "sched"))
            go = asyncio.Event()

            async def offer(scheduler: Scheduler, go: asyncio.Event = go) -> bool:
                await go.wait()  # every pod offers its bootstrap tick at the same instant
                return await scheduler.offer(scheduler.tick_for(entry, time.time() + 2))

            racing = [asyncio.ensure_future(offer(s)) for s in schedulers]
            await asyncio.sleep(0.05)
            go.set()
            accepted = await asyncio.gather(*racing)
            assert accepted.count(True) == 1
            depths.append(await admin.message_count(slot_name(app, "sched")))
        assert depths == [1] * 20
    finally:
        await admin.delete_queue(slot_name(app, "sched"))
        await admin.delete_queue(tick_queue_name(app))
        for pod in pods:
            await pod.close()


@pytest.mark.slow
@pytest.mark.fault
async def test_a_fleet_with_a_skewed_clock_and_killed_pods_fires_each_second_once(
    amqp_url: str,
) -> None:
    """Four `hare worker` processes of a 1 s schedule, one clock 300 ms ahead; one pod is
    SIGKILLed, one SIGTERMed, two new ones start. No occurrence runs twice or is missed."""
    from benchmarks.periodic import run_fleet

    result = await asyncio.to_thread(run_fleet, amqp_url, seconds=12, pods=4, skew=0.3, chaos=True)
    await delete_fleet_queues(amqp_url, result["app"])
    assert result["duplicates"] == 0, result
    assert result["missed"] == [], result
    assert result["occurrences"] >= 9, result
    assert result["exit_codes"][1:] == [0] * (len(result["exit_codes"]) - 1), result


@pytest.mark.slow
@pytest.mark.fault
async def test_a_deploy_that_changes_the_interval_takes_over_within_one_watchdog_period(
    amqp_url: str,
) -> None:
    """Three pods of the old version (every 2 s) keep running while a pod of the new version
    (every 3 s, a higher generation) starts: within one watchdog period plus one occurrence,
    only the new spec fires, even though the old pods handle some of its ticks."""
    from benchmarks.periodic import run_deploy

    result = await asyncio.to_thread(run_deploy, amqp_url, watchdog=3)
    await delete_fleet_queues(amqp_url, result["app"])
    # The new generation replaces the pending tick within one watchdog period (at most 1.2x);
    # an old occurrence already firing then still runs (docs/guide.md, "Deploys"), up to one
    # old period (2 s) later, and a run may start up to 0.8 s late on a busy machine; after
    # that, one new period (3 s) shows the new spec alone.
    settled = result["switched"] + 1.2 * result["watchdog"] + 2 + 3 + 0.8
    # Each run after the takeover as (seconds after the new pod was ready, occurrence,
    # generation of the pod that ran it): the new spec (generation 2, every 3 s) alone fires,
    # each of its occurrences once, even though the old pods run some of its ticks.
    late = [(round(t - result["switched"], 2), o, g) for t, o, g in result["records"]]
    late = [(t, o, g) for t, o, g in late if t > settled - result["switched"]]
    assert len(late) >= 2, (late, result)
    occurrences = [o for _, o, _ in late]
    assert all(o % 3 == 0 for o in occurrences), (late, result)
    assert all(b - a == 3 for a, b in itertools.pairwise(occurrences)), (late, result)
    assert result["exit_codes"] == [0] * len(result["exit_codes"]), result


async def delete_fleet_queues(amqp_url: str, app: str) -> None:
    """Delete what a `benchmarks.periodic` fleet declared."""
    transport = AmqpTransport(amqp_url)
    await transport.connect()
    try:
        for queue in (
            slot_name(app, "bench.second"),
            tick_queue_name(app),
            app + ".work",
            app + ".work.dead",
        ):
            await transport.delete_queue(queue)
    finally:
        await transport.close()
