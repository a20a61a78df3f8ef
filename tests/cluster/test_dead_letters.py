"""The node that leads `<queue>.dead` dies: the dead letters made while it is down are kept.

`<queue>.dead` of a quorum work queue is a quorum queue (`hare.core.topology.dead_letter_queue`):
with one of its three members down, a dead letter the broker makes (a quorum work queue's
`x-delivery-limit`, at most once) and one the worker publishes (a task that failed) both go to
the two members left. Until it was (a classic queue, which lives on one node, the one it was
declared through), the broker dropped the first and refused the second (basic.nack), and a
worker that (re)connected could not declare the queue at all (measured on 4.0.5, issue 19).

Both queues are declared through node 1, as a producer connected there declares them, so node 1
leads them; the worker and the producer are connected to the other nodes. The dead letters are
made once both queues have a new leader. A dead letter the broker makes in the moment between
(the dead-letter queue electing its leader) is dropped: a quorum queue dead-letters at most
once unless it is declared with `x-dead-letter-strategy: at-least-once`, which hare's work
queues are not. Made within ~0.1 s of the kill, the requeued message here was lost in 2 of 5
runs (RabbitMQ 4.0.5; issue 19).
"""

from __future__ import annotations

import pytest

from hare.core.topology import DEAD_SUFFIX
from hare.testing import drain, eventually
from hare.transport.base import Transport
from tests.apps.fault_app import Ledger
from tests.cluster.conftest import Cluster, tails
from tests.faults.conftest import Figures, Workers, producer_app, publish_jobs, vhost_of

pytestmark = [pytest.mark.cluster, pytest.mark.anyio]

DELIVERY_LIMIT = 3
GOOD_JOBS = [("fault.work", f"g{i}", 10) for i in range(20)]


@pytest.mark.timeout(180)
async def test_dead_letters_made_while_the_dead_letter_queues_node_is_down_are_kept(
    nodes: Cluster,
    cluster_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
) -> None:
    queue = f"dlq-{unique}"
    dlq = queue + DEAD_SUFFIX
    cleanup.append(queue)
    home = producer_app(nodes.urls(cluster_url, [1]), queue, delivery_limit=DELIVERY_LIMIT)
    try:
        await (await home.publisher()).ensure_queue(queue)  # both led by node 1
    finally:
        await home.aclose()
    worker = workers.start(
        queue, url=nodes.urls(cluster_url, [2, 3, 1]), concurrency=4, delivery_limit=DELIVERY_LIMIT
    )
    app = producer_app(nodes.urls(cluster_url, [3, 2, 1]), queue, delivery_limit=DELIVERY_LIMIT)
    transport = (await app.publisher()).transport
    good = {key for _, key, _ in GOOD_JOBS}
    try:
        await worker.wait_ready()
        await (await app.publisher()).ensure_queue(queue)
        await nodes.kill_node(1)
        # Once both have a new leader: a dead letter the broker makes while its target elects
        # one is dropped (at-most-once dead-lettering; see the module's docstring).
        await eventually(lambda: _led_elsewhere(nodes, vhost_of(cluster_url), queue), within=30)
        await app.asend_task("fault.requeue", ["requeued"], task_id="requeued")
        await app.asend_task("fault.fail", ["failing"], task_id="failing")
        await publish_jobs(app, GOOD_JOBS)
        await eventually(lambda: good | {"failing"} <= ledger.refresh().ended(), within=60)
        # The broker took the requeued message out of the work queue after its last delivery.
        await eventually(
            lambda: len(ledger.refresh().runs.get("requeued", [])) >= DELIVERY_LIMIT, within=30
        )
        await eventually(lambda: _holds(transport, queue, 0), within=30, interval=0.5)
        # Both dead letters are there, with node 1 still down.
        try:
            await eventually(lambda: _holds(transport, dlq, 2), within=30)
        except AssertionError:
            pass  # reported below
        kept = sorted(str(d.properties.headers.get("id")) for d in await drain(transport, dlq))
        alive = worker.alive
        code = await worker.stop()
    finally:
        await app.aclose()

    figures(
        "dead-letter queue's node lost",
        queue_type="quorum",
        dead_letters_made=2,
        dead_letters_kept=len(kept),
        good_lost=len(good - ledger.ended()),
        exit_code=code,
    )
    logs = tails(worker)
    assert alive and code == 0, logs
    # The requeued message (dead-lettered by the broker) and the failed task (by the worker).
    assert kept == ["failing", "requeued"], logs


async def _led_elsewhere(cluster: Cluster, vhost: str, queue: str) -> bool:
    """Whether `queue` and `<queue>.dead` both have a leader other than node 1."""
    queues = await cluster.queues(vhost)
    leaders = {queues[name].leader for name in (queue, queue + DEAD_SUFFIX)}
    return bool(leaders) and "" not in leaders and cluster.node_name(1) not in leaders


async def _holds(transport: Transport, queue: str, count: int) -> bool:
    return await transport.message_count(queue) == count
