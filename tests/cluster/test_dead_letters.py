"""The node that holds `<queue>.dead` dies: dead letters must not be lost with it.

`<queue>.dead` is a classic queue (`hare.core.topology.dead_letter_queue` says why), and a
classic queue lives on one node, the one it was declared through: with hare's layout, the node
the first producer or worker of the queue was connected to, which also leads the work queue.
While that node is down (measured on 4.0.5):

* a dead letter the broker makes (a quorum work queue's `x-delivery-limit`) is dropped:
  quorum queues dead-letter at most once by default, and the target is unavailable;
* a dead letter the worker publishes (a task that failed) is refused with basic.nack: the
  worker holds the delivery and publishes it again until the node is back;
* declaring the queue, as every producer and worker does on a (re)connect, gets no reply:
  a worker that starts or reconnects then consumes nothing until the node is back.

The worker and the producer here are connected to other nodes and started before the kill.
This test fails until the design changes (issue 19; the lead decides): it is marked xfail.
"""

from __future__ import annotations

import pytest

from hare.core.topology import DEAD_SUFFIX
from hare.errors import BrokerError
from hare.testing import eventually
from hare.transport.base import Transport
from tests.apps.fault_app import Ledger
from tests.cluster.conftest import Cluster, tails
from tests.faults.conftest import Figures, Workers, producer_app, publish_jobs

pytestmark = [pytest.mark.cluster, pytest.mark.anyio]

DELIVERY_LIMIT = 3
GOOD_JOBS = [("fault.work", f"g{i}", 10) for i in range(20)]


@pytest.mark.timeout(180)
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 19: <queue>.dead is a classic queue, unavailable while its node is down; "
    "the DLQ design is being decided",
)
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
    cleanup.append(queue)
    home = producer_app(nodes.urls(cluster_url, [1]), queue, delivery_limit=DELIVERY_LIMIT)
    try:
        await (await home.publisher()).ensure_queue(queue)  # both queues on node 1, as hare does
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
        await app.asend_task("fault.requeue", ["requeued"], task_id="requeued")
        await app.asend_task("fault.fail", ["failing"], task_id="failing")
        await publish_jobs(app, GOOD_JOBS)
        await eventually(lambda: good | {"failing"} <= ledger.refresh().ended(), within=60)
        # The broker took the requeued message out of the work queue after its last delivery.
        await eventually(
            lambda: len(ledger.refresh().runs.get("requeued", [])) >= DELIVERY_LIMIT, within=30
        )
        await eventually(lambda: _empty(transport, queue), within=30, interval=0.5)
        await nodes.start_node(1)
        # The worker's dead letter goes through once the node is back; the broker's, by then,
        # was kept or dropped.
        dead = await eventually(lambda: _kept(transport, queue + DEAD_SUFFIX), within=30)
        alive = worker.alive
        code = await worker.stop()
    finally:
        await app.aclose()

    figures(
        "dead-letter queue's node lost",
        queue_type="quorum",
        dead_letters_made=2,
        dead_letters_kept=dead,
        good_lost=len(good - ledger.ended()),
        exit_code=code,
    )
    logs = tails(worker)
    assert alive and code == 0, logs
    # The requeued message (dead-lettered by the broker) and the failed task (by the worker).
    assert dead == 2, logs


async def _empty(transport: Transport, queue: str) -> bool:
    return await transport.message_count(queue) == 0


async def _kept(transport: Transport, queue: str) -> int:
    """How many messages `queue` holds (0, falsy, while its node is down)."""
    try:
        return await transport.message_count(queue)
    except BrokerError:  # no reply from a node still starting
        return 0
