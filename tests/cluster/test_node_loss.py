"""A node dies under load, and comes back.

Two `hare worker`s and a producer get all three nodes' URLs, `;`-joined in different orders.
The producer publishes tasks at about 500 a second (each waits for its confirm), and the
node that leads the work queue is SIGKILLed (`cluster.sh kill-node`) mid-run. The quorum
queue elects a leader among the two nodes left; a client of the dead node connects to the
next URL in its list and carries on.

* **node loss**: the producer and one worker are connected to the leader's node. Every
  confirmed publish runs to its end and neither worker exits. What runs twice is bounded by
  what was unsettled on the dead node's connections: the deliveries the worker on it held
  (returned to the queue when the node went; the other worker may run them again) and the
  publishes whose confirm was lost with it (the producer sends them again).
* **node back**: every client is connected to the other nodes; the leader's node is killed,
  then started again under load. It rejoins, the work queue and the ladder regain their third
  member, and nothing runs twice.

`<queue>.dead` is declared with the work queue, through the same node, which leads both: a
quorum queue too, it loses a member with the node and nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from hare import Hare
from hare.core.ladder import LEVELS, level_name
from hare.testing import eventually
from tests.apps.fault_app import Ledger, Run
from tests.cluster.conftest import Cluster, declare_through, tails
from tests.faults.conftest import (
    Figures,
    Workers,
    finish,
    produce_paced,
    producer_app,
    vhost_of,
)

pytestmark = [pytest.mark.cluster, pytest.mark.anyio]

TASKS = 3_000
RATE = 500  # tasks a second, from the producer as a whole
LOOPS = 20  # concurrent publishing loops (each waits for its confirm)
CONCURRENCY = 16


def largest_gap(moments: Sequence[float], after: float) -> float:
    """The longest time without any of `moments`, from `after` to the last of them."""
    points = [after, *sorted(m for m in moments if m >= after)]
    return max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0)


@dataclass
class Load:
    """The producer's run: what it sent (key -> when confirmed), and how it went."""

    app: Hare
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)
    producing: asyncio.Task[int] | None = None
    failures: int = 0
    seconds: float = 0.0

    def start(self, prefix: str) -> None:
        self.began = time.monotonic()
        self.producing = asyncio.create_task(
            produce_paced(
                self.app, prefix, self.stop, self.sent, rate=RATE, loops=LOOPS, limit=TASKS
            )
        )

    async def reach(self, count: int) -> None:
        """Wait until `count` publishes were confirmed (or the producer is done)."""
        await eventually(lambda: len(self.sent) >= count or self.done, within=60)

    @property
    def done(self) -> bool:
        return self.producing is not None and self.producing.done()

    async def end(self) -> None:
        """Wait for the producer to finish."""
        assert self.producing is not None
        self.failures = await self.producing
        self.seconds = time.monotonic() - self.began


@dataclass
class Verdict:
    """What the ledger says of a load run, counted from the fault on."""

    load: Load
    missing: list[str]
    duplicates: dict[str, list[Run]]
    gaps: dict[str, float]

    def figures(self) -> dict[str, Any]:
        """The figures every scenario here reports."""
        load = self.load
        return {
            "queue_type": "quorum",
            "tasks": TASKS,
            "published": len(load.sent),
            "publish_failures": load.failures,
            "rate": round(len(load.sent) / load.seconds),
            "concurrency": CONCURRENCY,
            "lost": len(self.missing),
            "duplicates": len(self.duplicates),
            **self.gaps,
        }

    def check(self, alive: list[bool], codes: list[int], logs: str) -> None:
        """Every confirmed publish ran, every publish was confirmed, no worker exited."""
        assert not self.missing, (len(self.missing), self.missing[:20], logs)
        assert self.load.failures == 0, logs
        assert all(alive) and codes == [0] * len(codes), logs


def judge(ledger: Ledger, load: Load, fault_at: float) -> Verdict:
    ledger.refresh()
    starts = [run.started for runs in ledger.runs.values() for run in runs]
    return Verdict(
        load,
        missing=sorted(set(load.sent) - ledger.ended()),
        duplicates={key: runs for key, runs in ledger.duplicates().items() if key in load.sent},
        gaps={
            "publish_gap": round(largest_gap(list(load.sent.values()), fault_at), 2),
            "consume_gap": round(largest_gap(starts, fault_at), 2),
        },
    )


@pytest.mark.timeout(240)
async def test_killing_the_leaders_node_under_load_loses_no_confirmed_task(
    nodes: Cluster,
    cluster_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
) -> None:
    queue = f"loss-{unique}"
    cleanup.append(queue)
    leader = await declare_through(nodes, cluster_url, queue, 1)
    near, far = nodes.others(leader)
    on_leader = workers.start(
        queue, name="on-leader", url=nodes.urls(cluster_url, [leader, far, near]),
        concurrency=CONCURRENCY,
    )  # fmt: skip
    elsewhere = workers.start(
        queue, name="elsewhere", url=nodes.urls(cluster_url, [near, far, leader]),
        concurrency=CONCURRENCY,
    )  # fmt: skip
    load = Load(producer_app(nodes.urls(cluster_url, [leader, near, far]), queue))
    try:
        await on_leader.wait_ready()
        await elsewhere.wait_ready()
        load.start("n")
        await load.reach(TASKS // 3)
        killed_at = time.monotonic()
        await nodes.kill_node(leader)
        await load.end()
        alive, codes = await finish(ledger, set(load.sent), [on_leader, elsewhere], within=90)
        new_leader = await nodes.leader_of(vhost_of(cluster_url), queue)
    finally:
        load.stop.set()
        await load.app.aclose()

    verdict = judge(ledger, load, killed_at)
    duplicates = verdict.duplicates
    figures(
        "node loss",
        **verdict.figures(),
        duplicates_first_on_leader=sum(
            1 for runs in duplicates.values() if runs[0].pid == on_leader.pid
        ),
        exit_codes=codes,
    )
    logs = tails(on_leader, elsewhere)
    assert new_leader != leader
    verdict.check(alive, codes, logs)
    # Only what was unsettled on the dead node's connections: the worker's prefetch and one
    # publish per producing loop.
    assert all(len(runs) == 2 for runs in duplicates.values()), duplicates
    assert len(duplicates) <= CONCURRENCY + LOOPS, (len(duplicates), logs)


@pytest.mark.timeout(240)
async def test_the_killed_node_rejoins_under_load_and_nothing_runs_twice(
    nodes: Cluster,
    cluster_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
) -> None:
    queue = f"back-{unique}"
    cleanup.append(queue)
    vhost = vhost_of(cluster_url)
    leader = await declare_through(nodes, cluster_url, queue, 2)
    near, far = nodes.others(leader)
    started = [
        workers.start(
            queue, name=f"w{i}", url=nodes.urls(cluster_url, order), concurrency=CONCURRENCY
        )
        for i, order in enumerate([[near, far, leader], [far, near, leader]])
    ]
    load = Load(producer_app(nodes.urls(cluster_url, [far, near, leader]), queue))
    await load.app.asend_task("fault.work", ["ladder", 1], task_id="ladder", countdown=1)
    replicated = [queue, *(level_name(i) for i in range(LEVELS))]
    try:
        for worker in started:
            await worker.wait_ready()
        load.start("b")
        await load.reach(TASKS // 4)
        killed_at = time.monotonic()
        await nodes.kill_node(leader)
        await load.reach(TASKS // 2)
        restarted_at = time.monotonic()
        await nodes.start_node(leader)
        node_back = time.monotonic() - restarted_at

        async def members_back() -> bool:
            queues = await nodes.queues(vhost)
            return all(len(queues[name].online) == len(nodes.nodes) for name in replicated)

        await eventually(members_back, within=60, interval=0.5)
        members_seconds = time.monotonic() - restarted_at
        await load.end()
        alive, codes = await finish(ledger, set(load.sent), started, within=90)
    finally:
        load.stop.set()
        await load.app.aclose()

    verdict = judge(ledger, load, killed_at)
    figures(
        "node back",
        **verdict.figures(),
        node_start_seconds=round(node_back, 1),
        members_back_seconds=round(members_seconds, 1),
        exit_codes=codes,
    )
    logs = tails(*started)
    verdict.check(alive, codes, logs)
    assert verdict.duplicates == {}, (verdict.duplicates, logs)
