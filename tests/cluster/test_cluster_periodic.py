"""Periodic v2 on the 3-node cluster: SIGKILL the node that leads a schedule's slot and the
tick queue, and that the leading worker is connected to; the schedule fires on, with no
duplicate and at most one watchdog period missed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hare.periodic.ticks import slot_name, tick_queue_name
from hare.testing import eventually
from tests.amqp.periodic_fleet import SCHEDULE, PeriodicFleet, tally
from tests.cluster.conftest import Cluster
from tests.faults.conftest import vhost_of

pytestmark = [pytest.mark.cluster, pytest.mark.anyio]

WATCHDOG = 5.0


async def test_killing_the_node_of_the_slot_and_the_leader_keeps_the_schedule_firing(
    nodes: Cluster, cluster_url: str, tmp_path: Path
) -> None:
    """Worker A connects to node 1 first, declares the queues (their leaders are on its node)
    and leads; worker B connects to node 2. Node 1 is SIGKILLed: the slot, the tick queue and
    the leading worker's connection go with it. B takes the lead, the schedule fires on."""
    vhost = vhost_of(cluster_url)
    fleet = PeriodicFleet(nodes.urls(cluster_url, [1, 2, 3]), tmp_path, watchdog=WATCHDOG)
    try:
        first = fleet.start()
        await first.wait_for("worker ready")
        fleet.start(nodes.urls(cluster_url, [2, 3, 1]))
        assert await fleet.leader() is first
        await eventually(lambda: len(fleet.records()) >= 3, within=60, interval=0.2)
        slot, ticks = slot_name(fleet.app, SCHEDULE), tick_queue_name(fleet.app)
        killed = await nodes.leader_of(vhost, slot)
        assert await nodes.leader_of(vhost, ticks) == killed == 1
        before = len(fleet.records())
        await nodes.kill_node(killed)
        await fleet.leader(within=90, not_=first)
        await eventually(
            lambda: len(fleet.records()) >= before + 2 * WATCHDOG, within=120, interval=0.2
        )
        moved = await nodes.leader_of(vhost, slot)
    finally:
        codes = fleet.stop()
    result = tally(fleet.records())
    assert result.duplicates == 0, result
    assert len(result.missed) <= WATCHDOG, result  # a 1 s schedule: at most one period missed
    assert moved != killed
    assert codes == [0, 0], codes  # both workers rode it out: none exited
