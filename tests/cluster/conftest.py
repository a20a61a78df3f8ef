"""Fixtures of the cluster tier: a 3-node RabbitMQ 4.0 cluster on loopback, and node faults.

`scripts/rabbitmq/cluster.sh` runs the nodes (RabbitMQ 4.0.5 from a Debian chroot, AMQP on
127.0.0.1:5681..5683; it needs root). The session fixture `cluster` starts them (idempotent:
a cluster that runs already is used as it is, and left running), waits until every node sees
all three running, and stops at the end only a cluster it started. Without root the tier is
skipped locally; under CI it fails, as does a cluster that cannot start.

The tests run in a vhost of their own (`cluster_url`), and `nodes` gives each test the
cluster with every node running again at its end (a test kills nodes; the next one must find
three). Worker processes, the ledger and figures are the fault suite's (`tests/faults`).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from hare.testing import eventually
from tests.faults.conftest import (
    ROOT,
    WorkerProcess,
    cleanup,
    command,
    command_sync,
    figures,
    ledger,
    producer_app,
    scratch_vhost,
    vhost_of,
    workers,
)

# The fault suite's fixtures, on the cluster's vhost (they take it as `fault_url`).
__all__ = ("Cluster", "QueueInfo", "cleanup", "figures", "ledger", "workers")

SCRIPT = ROOT / "scripts" / "rabbitmq" / "cluster.sh"
SIZE = 3
#: cluster.sh's defaults; the tier follows the same environment variables.
PREFIX = os.environ.get("RMQ4C_PREFIX", "rabbit4c")
BASE_PORT = int(os.environ.get("RMQ4C_BASE_PORT", "5680"))


@dataclass(frozen=True)
class QueueInfo:
    """One queue as `rabbitmqctl list_queues` sees it."""

    name: str
    type: str
    leader: str
    members: tuple[str, ...]
    online: tuple[str, ...]


class Cluster:
    """The nodes of `cluster.sh`, numbered 1..3, and what tests do to them."""

    def __init__(self) -> None:
        self.nodes = tuple(range(1, SIZE + 1))

    def node_name(self, n: int) -> str:
        return f"{PREFIX}{n}@localhost"

    def node_of(self, name: str) -> int:
        """The number of the node called `name` (as rabbitmqctl names it)."""
        for n in self.nodes:
            if self.node_name(n) == name:
                return n
        raise AssertionError(f"{name!r} is none of the cluster's nodes")

    def port(self, n: int) -> int:
        return BASE_PORT + n

    def answers(self, n: int) -> bool:
        """Whether node `n` takes TCP connections on its AMQP port now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port(n)), 1):
                return True
        except OSError:
            return False

    def urls(self, base: str, order: Sequence[int]) -> str:
        """`base` (any node's URL with the vhost) for the nodes in `order`, `;`-joined: the
        broker URL of a client that tries them in that order."""
        parts = urlsplit(base)
        user = parts.netloc.rsplit("@", 1)[0]
        return ";".join(
            urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{self.port(n)}")) for n in order
        )

    def others(self, n: int) -> list[int]:
        """The nodes other than `n`, in turn after it (for n = 2: 3, 1)."""
        return [(n + i - 1) % SIZE + 1 for i in range(1, SIZE)]

    def running(self) -> list[int]:
        return [n for n in self.nodes if self.answers(n)]

    def _script(self, *args: str) -> list[str]:
        return [str(SCRIPT), *args]

    def ctl_sync(self, *args: str, node: int | None = None, timeout: float = 60.0) -> str:
        """`rabbitmqctl -q ARGS` on `node` (default: the first node that runs)."""
        n = node or self.running()[0]
        return command_sync(*self._script("ctl", str(n), "-q", *args), timeout=timeout)

    async def ctl(self, *args: str, node: int | None = None, within: float = 60.0) -> str:
        """`rabbitmqctl -q ARGS` on `node`; by default on the nodes that run, in turn, until
        one answers (a node killed a moment ago may still take TCP connections)."""
        failure: RuntimeError | None = None
        for n in [node] if node else self.running():
            try:
                return await command(*self._script("ctl", str(n), "-q", *args), within=within)
            except RuntimeError as exc:
                failure = exc
        raise failure or RuntimeError("no node of the cluster runs")

    async def kill_node(self, n: int) -> None:
        """SIGKILL node `n` (a crash: no goodbye to its peers or clients)."""
        await command(*self._script("kill-node", str(n)), within=60)

    async def start_node(self, n: int) -> None:
        """Start node `n` again; return once it runs (it rejoins from its data)."""
        await command(*self._script("start-node", str(n)), within=300)

    async def running_nodes(self) -> set[str]:
        """The nodes the cluster itself says run (every node must see the others)."""
        status = json.loads(await self.ctl("cluster_status", "--formatter", "json"))
        return set(status["running_nodes"])

    async def wait_all_running(self, within: float = 120.0) -> None:
        everyone = {self.node_name(n) for n in self.nodes}

        async def all_running() -> bool:
            if len(self.running()) < SIZE:
                return False
            return await self.running_nodes() == everyone

        await eventually(all_running, within=within, interval=0.5)

    async def queues(self, vhost: str) -> dict[str, QueueInfo]:
        """Every queue of `vhost` by name, with its type, leader and (online) members."""
        output = await self.ctl(
            "list_queues", "-p", vhost, "name", "type", "leader", "members", "online",
            "--formatter", "json",
        )  # fmt: skip
        return {row["name"]: _queue_info(row) for row in json.loads(output)}

    async def leader_of(self, vhost: str, queue: str) -> int:
        """The node that leads quorum queue `queue` now."""
        return self.node_of((await self.queues(vhost))[queue].leader)


async def declare_through(cluster: Cluster, url: str, queue: str, node: int) -> int:
    """Declare `queue` and `<queue>.dead` as a producer does, connected to node `node` (which
    then leads both); the node that leads `queue`."""
    app = producer_app(cluster.urls(url, [node]), queue)
    try:
        await (await app.publisher()).ensure_queue(queue)
    finally:
        await app.aclose()
    return await cluster.leader_of(vhost_of(url), queue)


def tails(*started: WorkerProcess) -> str:
    return "\n".join(worker.log_tail(40) for worker in started)


def _queue_info(row: dict[str, Any]) -> QueueInfo:
    def names(value: Any) -> tuple[str, ...]:
        # A classic queue's `online` is "" rather than a list.
        return tuple(value) if isinstance(value, list) else ()

    return QueueInfo(
        name=row["name"],
        type=row["type"],
        leader=str(row.get("leader") or ""),
        members=names(row.get("members")),
        online=names(row.get("online")),
    )


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message + " -- under CI that is a failure")
    pytest.skip(message)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The running 3-node cluster, started if need be (and then stopped at the end)."""
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing")
    if os.geteuid() != 0:
        _unavailable(f"the cluster tier needs root to run {SCRIPT.name} (chroot, unshare)")
    nodes = Cluster()
    ours = not nodes.running()
    try:
        command_sync(str(SCRIPT), "start", timeout=600)
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"the 3-node cluster did not start: {exc}")
    try:
        asyncio.run(nodes.wait_all_running())
        yield nodes
    finally:
        if ours and not os.environ.get("HARE_CLUSTER_KEEP"):
            command_sync(str(SCRIPT), "stop", timeout=300)


@pytest.fixture(scope="session")
def cluster_url(cluster: Cluster) -> Iterator[str]:
    """Node 1's URL of a vhost of this session's own, deleted (with all in it) at the end."""
    base = f"amqp://guest:guest@127.0.0.1:{cluster.port(1)}/"
    yield from scratch_vhost(base, "cluster", lambda *args: cluster.ctl_sync(*args))


@pytest.fixture
async def nodes(cluster: Cluster, cleanup: list[str]) -> AsyncIterator[Cluster]:
    """The cluster, with every node running again (and seen running by all) at the end.

    Set up after `cleanup`, so torn down before it: the test's queues are deleted once every
    node runs again (a quorum queue with a member down takes long to delete)."""
    yield cluster
    for n in cluster.nodes:
        if not cluster.answers(n):
            await cluster.start_node(n)
    await cluster.wait_all_running()


@pytest.fixture(scope="session")
def fault_url(cluster_url: str) -> str:
    """What the fault suite's fixtures (`workers`, `cleanup`) connect to: the cluster."""
    return cluster_url
