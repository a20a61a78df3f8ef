"""The AMQP transport when a node does not answer: a call times out, and the next one works.

A classic queue lives on one node. With that node down, another node answers no declare of
the queue (RabbitMQ 4.0.5 keeps the call waiting), so the transport's call times out. aiormq
then closes the channel and refuses every later call on it, while the channel does not count
as closed until the broker confirms the close. The transport used to keep it, and every
declare after the timeout failed with "its channel is closed" (a `BrokerError`, not
`BrokerNotReady`): a worker subscribing again after a node loss exited on it (issue 19).
"""

from __future__ import annotations

import pytest

from hare.core.topology import Queue
from hare.errors import BrokerNotReady
from hare.transport.amqp.transport import AmqpTransport
from tests.cluster.conftest import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.anyio]


async def test_a_call_that_timed_out_does_not_spoil_the_calls_after_it(
    nodes: Cluster, cluster_url: str, unique: str
) -> None:
    on_one = Queue(name=f"one-node-{unique}", arguments={"x-queue-type": "classic"})
    replicated = Queue(name=f"replicated-{unique}", arguments={"x-queue-type": "quorum"})
    async with AmqpTransport(nodes.urls(cluster_url, [1])) as transport:
        await transport.declare_queue(on_one)
    await nodes.kill_node(1)
    async with AmqpTransport(nodes.urls(cluster_url, [2]), publish_timeout=2) as transport:
        with pytest.raises(BrokerNotReady, match="no reply within 2"):
            await transport.declare_queue(on_one)
        await transport.declare_queue(replicated)
        assert await transport.message_count(replicated.name) == 0
