"""Periodic v2 on a 3-node RabbitMQ 4.0 cluster: kill the node that leads a schedule's slot and
the tick queue, and the node the leading worker is connected to; the schedule fires on.

`scripts/rabbitmq/cluster.sh` runs the nodes (AMQP on 127.0.0.1:5681..5683; it needs root).
The fixture here is a minimal one of this module's own (the cluster tier's shared fixtures
were not on main when it was written): it starts the cluster if no node answers, runs the
test in a vhost of its own, and starts again any node a test killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hare.periodic.ticks import slot_name, tick_queue_name
from hare.testing import eventually
from tests.amqp.periodic_fleet import SCHEDULE, PeriodicFleet, tally

pytestmark = [pytest.mark.cluster, pytest.mark.fault, pytest.mark.slow, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "rabbitmq" / "cluster.sh"
NODES = (1, 2, 3)
PREFIX = os.environ.get("RMQ4C_PREFIX", "rabbit4c")
BASE_PORT = int(os.environ.get("RMQ4C_BASE_PORT", "5680"))
WATCHDOG = 5.0


def cluster(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def answers(n: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", BASE_PORT + n), 1):
            return True
    except OSError:
        return False


def urls(vhost: str, order: tuple[int, ...]) -> str:
    """The broker URL of a worker that tries the nodes in `order`."""
    return ";".join(f"amqp://guest:guest@127.0.0.1:{BASE_PORT + n}/{vhost}" for n in order)


def leaders(vhost: str) -> dict[str, int]:
    """The node that leads each quorum queue of `vhost`."""
    node = next(n for n in NODES if answers(n))
    out = cluster("ctl", str(node), "-q", "list_queues", "-p", vhost, "name", "leader",
                  "--formatter", "json")  # fmt: skip
    return {
        row["name"]: int(row["leader"].split("@")[0].removeprefix(PREFIX))
        for row in json.loads(out)
    }


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    """A vhost of this module's own on the running cluster (started if no node answers)."""
    if os.geteuid() != 0:
        message = f"the cluster tests need root to run {SCRIPT.name}"
        if os.environ.get("CI"):
            pytest.fail(message + " -- under CI that is a failure")
        pytest.skip(message)
    if not all(answers(n) for n in NODES):
        cluster("start", timeout=600)
    name = "hare-periodic-" + uuid.uuid4().hex[:8]
    cluster("ctl", "1", "-q", "add_vhost", name)
    try:
        cluster("ctl", "1", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        for n in NODES:
            if not answers(n):
                cluster("start-node", str(n), timeout=600)
        cluster("ctl", "1", "-q", "delete_vhost", name)


async def test_killing_the_node_of_the_slot_and_the_leader_keeps_the_schedule_firing(
    vhost: str, tmp_path: Path
) -> None:
    """Worker A connects to node 1 first, declares the queues (their leaders are on its node)
    and leads; worker B connects to node 2. Node 1 is SIGKILLed: the slot, the tick queue and
    the leading worker's connection go with it. B takes the lead, the schedule fires on."""
    fleet = PeriodicFleet(urls(vhost, (1, 2, 3)), tmp_path, watchdog=WATCHDOG)
    killed = None
    try:
        first = fleet.start()
        await first.wait_for("worker ready")
        fleet.start(urls(vhost, (2, 3, 1)))
        assert await fleet.leader() is first
        await eventually(lambda: len(fleet.records()) >= 3, within=60, interval=0.2)
        placed = await asyncio.to_thread(leaders, vhost)
        killed = placed[slot_name(fleet.app, SCHEDULE)]
        assert placed[tick_queue_name(fleet.app)] == killed, placed
        before = len(fleet.records())
        await asyncio.to_thread(cluster, "kill-node", str(killed))
        await fleet.leader(within=90, not_=first if killed == 1 else None)
        await eventually(
            lambda: len(fleet.records()) >= before + 2 * WATCHDOG, within=120, interval=0.2
        )
        moved = await asyncio.to_thread(leaders, vhost)
    finally:
        codes = fleet.stop()
        if killed is not None and not answers(killed):
            await asyncio.to_thread(cluster, "start-node", str(killed), timeout=600)
    result = tally(fleet.records())
    assert result.duplicates == 0, result
    assert len(result.missed) <= WATCHDOG, result  # a 1 s schedule: at most one period missed
    assert moved[slot_name(fleet.app, SCHEDULE)] != killed, moved
    assert codes == [0, 0], codes  # both workers rode it out: none exited
