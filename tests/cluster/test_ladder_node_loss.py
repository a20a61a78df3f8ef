"""A node dies while delayed tasks wait in the delay ladder: they all run, about on time.

2,000 tasks with an eta 1-20 s ahead (random) wait in the ladder's quorum levels
(`hare.core.ladder`); then the node that leads the most levels, and the work queue, is
SIGKILLed; one worker is connected to it, the other to another node. The levels elect leaders
on the nodes left, and a message keeps its place in its level's log and its expiry: it leaves
each level on time and moves on by at-least-once dead-lettering. Every task runs, and none
runs more than twice. A task runs twice when the dead node's connection held it unsettled (the
worker on it ran it, its ack was lost with the node, the other worker got it), or when a level
(or the work queue) changed leaders while a dead letter from it was not yet confirmed: the new
leader sends it again (at-least-once dead-lettering) and the copy reaches the other worker. A
worker settles the copies that reach it by its first run's outcome (`hare.worker.runs`).
How late each task started after its eta is a figure (p50, p99, max), not an assertion.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from hare.core.ladder import LEVELS, level_name
from tests.apps.fault_app import Ledger
from tests.cluster.conftest import Cluster, declare_through, tails
from tests.faults.conftest import Figures, Workers, finish, producer_app, vhost_of

pytestmark = [pytest.mark.cluster, pytest.mark.anyio]

TASKS = 2_000
EARLIEST, LATEST = 1.0, 20.0  # seconds ahead
CONCURRENCY = 32


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def ladder_leader(cluster: Cluster, url: str) -> int:
    """Declare the ladder (through node 1, if no one did yet); the node leading most levels."""
    app = producer_app(cluster.urls(url, [1]), "unused")
    try:
        await (await app.publisher()).ensure_ladder()
    finally:
        await app.aclose()
    queues = await cluster.queues(vhost_of(url))
    leaders = Counter(queues[level_name(i)].leader for i in range(LEVELS))
    return cluster.node_of(leaders.most_common(1)[0][0])


@pytest.mark.timeout(240)
async def test_delayed_tasks_waiting_in_the_ladder_all_run_when_a_node_dies(
    nodes: Cluster,
    cluster_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
) -> None:
    queue = f"delayed-{unique}"
    cleanup.append(queue)
    victim = await ladder_leader(nodes, cluster_url)
    near, far = nodes.others(victim)
    await declare_through(nodes, cluster_url, queue, victim)
    started = [
        workers.start(
            queue, name=f"w{i}", url=nodes.urls(cluster_url, order), concurrency=CONCURRENCY
        )
        for i, order in enumerate([[victim, near, far], [near, far, victim]])
    ]
    app = producer_app(nodes.urls(cluster_url, [far, near, victim]), queue)
    rng = random.Random(19)
    due: dict[str, float] = {}  # key -> its eta, on the monotonic clock
    try:
        for worker in started:
            await worker.wait_ready()

        async def publish(key: str) -> None:
            ahead = rng.uniform(EARLIEST, LATEST)
            wall, mono = datetime.now(UTC), time.monotonic()
            eta = wall + timedelta(seconds=ahead)
            await app.asend_task("fault.work", [key, 1], task_id=key, eta=eta)
            due[key] = mono + ahead

        for first in range(0, TASKS, 250):
            await asyncio.gather(*(publish(f"d{i}") for i in range(first, min(TASKS, first + 250))))
        killed_at = time.monotonic()
        waiting = sum(1 for moment in due.values() if moment > killed_at)
        await nodes.kill_node(victim)
        alive, codes = await finish(ledger, set(due), started, within=LATEST + 60)
    finally:
        await app.aclose()

    ledger.refresh()
    on_victim = started[0].pid
    missing = sorted(set(due) - ledger.ended())
    duplicates = {key: runs for key, runs in ledger.duplicates().items() if key in due}
    lateness = [runs[0].started - due[key] for key, runs in ledger.runs.items() if key in due]
    figures(
        "ladder node loss",
        queue_type="quorum",
        tasks=TASKS,
        delays=f"{EARLIEST:.0f}-{LATEST:.0f} s",
        concurrency=CONCURRENCY,
        waiting_at_kill=waiting,
        lost=len(missing),
        duplicates=len(duplicates),
        duplicates_first_on_victim=sum(1 for r in duplicates.values() if r[0].pid == on_victim),
        lateness_p50=round(percentile(lateness, 0.50), 3),
        lateness_p99=round(percentile(lateness, 0.99), 3),
        lateness_max=round(max(lateness), 3),
        exit_codes=codes,
    )
    logs = tails(*started)
    assert waiting > TASKS // 2, "the kill came after most tasks had left the ladder"
    assert not missing, (len(missing), missing[:20], logs)
    assert all(alive) and codes == [0, 0], logs
    # At most the victim's prefetch of unsettled deliveries, plus one window of at-least-once
    # dead-lettering (RabbitMQ's dead-letter worker holds up to 32 unconfirmed per queue).
    assert all(len(runs) == 2 for runs in duplicates.values()), duplicates
    assert len(duplicates) <= CONCURRENCY + 32, (len(duplicates), logs)
