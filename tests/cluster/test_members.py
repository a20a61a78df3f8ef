"""What hare declares on a 3-node cluster is replicated to all three nodes.

A `hare worker` and a producer (a task now, a task in 5 s) declare hare's objects through
the cluster; `rabbitmqctl list_queues name type members online` then says where each lives.
A queue with one member is lost with its node: a work queue, its dead-letter queue, a ladder
level and the revocation stream must have a member on every node.
"""

from __future__ import annotations

import pytest

from hare.control.revocation import STREAM
from hare.core.ladder import LEVELS, PARKING_QUEUE, level_name
from hare.core.topology import DEAD_SUFFIX
from tests.cluster.conftest import Cluster, QueueInfo
from tests.faults.conftest import Workers, producer_app, vhost_of

pytestmark = [pytest.mark.cluster, pytest.mark.anyio]


async def declared(
    cluster: Cluster, url: str, workers: Workers, queue: str
) -> dict[str, QueueInfo]:
    """Declare hare's objects for `queue` as a worker and a producer do; the vhost's queues."""
    worker = workers.start(queue, url=cluster.urls(url, [2, 3, 1]), concurrency=2)
    app = producer_app(cluster.urls(url, [3, 1, 2]), queue)
    try:
        await worker.wait_ready()
        await app.asend_task("fault.work", ["now", 1], task_id="now")
        await app.asend_task("fault.work", ["later", 1], task_id="later", countdown=5)
    finally:
        await app.aclose()
    return await cluster.queues(vhost_of(url))


def everywhere(cluster: Cluster) -> set[str]:
    return {cluster.node_name(n) for n in cluster.nodes}


async def test_work_queue_dead_letters_ladder_and_revocations_have_a_member_on_every_node(
    nodes: Cluster, cluster_url: str, workers: Workers, unique: str, cleanup: list[str]
) -> None:
    queue = f"members-{unique}"
    cleanup.append(queue)
    queues = await declared(nodes, cluster_url, workers, queue)
    replicated = [
        queue,
        queue + DEAD_SUFFIX,
        STREAM,
        PARKING_QUEUE,
        *(level_name(i) for i in range(LEVELS)),
    ]
    for name in replicated:
        info = queues[name]
        assert info.type == ("stream" if name == STREAM else "quorum"), info
        assert set(info.members) == everywhere(nodes), info
        assert set(info.online) == everywhere(nodes), info
