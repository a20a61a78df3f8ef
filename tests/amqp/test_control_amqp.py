"""Remote control on a real RabbitMQ, against real Celery 5.7 clients and workers.

Everything runs in a private virtual host (created with rabbitmqctl, deleted afterwards): the
revocation stream has a fixed name, and a Celery worker's pidbox would answer other tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest

from hare.control.client import Control
from hare.control.revocation import STREAM
from hare.control.revocation_stream import Revocations
from hare.control.server import ControlServer
from hare.testing import eventually
from hare.transport.amqp.transport import AmqpTransport

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

CELERY_NODE = "celery-w1@testhost"


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")


@pytest.fixture(scope="module")
def vhost_url(amqp_url: str) -> Iterator[str]:
    """A virtual host of this module's own, deleted with everything in it afterwards."""
    if shutil.which("rabbitmqctl") is None:
        message = "these tests need rabbitmqctl to make a private vhost at " + amqp_url
        if os.environ.get("CI"):
            pytest.fail(message + " -- under CI that is a failure")
        pytest.skip(message)
    vhost = "hare-control-" + uuid.uuid4().hex[:8]
    user = urlsplit(amqp_url).username or "guest"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield urlunsplit(urlsplit(amqp_url)._replace(path="/" + quote(vhost, safe="")))
    finally:
        _rabbitmqctl("delete_vhost", vhost)


class View:
    """A worker as a ControlServer sees it."""

    def __init__(self) -> None:
        self.terminated: list[list[str]] = []

    def active(self) -> list[dict[str, Any]]:
        return []

    def reserved(self) -> list[dict[str, Any]]:
        return []

    def registered(
        self, taskinfoitems: Sequence[str] | None = None, builtins: bool = False
    ) -> list[str]:
        return ["shop.add", "shop.mul"]

    def stats(self) -> dict[str, Any]:
        return {"pool": {"max-concurrency": 8}, "total": {}}

    def queues(self) -> list[str]:
        return ["default"]

    def query(self, ids: Sequence[str]) -> dict[str, list[Any]]:
        return {}

    def scheduled(self) -> list[dict[str, Any]]:
        return []

    def running_headers(self) -> dict[str, Any]:
        return {}

    def terminate(self, ids: Sequence[str], signal: str) -> list[str]:
        self.terminated.append(list(ids))
        return list(ids)


class HareNode:
    def __init__(self, url: str, nodename: str) -> None:
        self.transport = AmqpTransport(url, connect_timeout=10, publish_timeout=10)
        self.view = View()
        self.revocations = Revocations(terminate=self.view.terminate)
        self.server = ControlServer(self.view, self.revocations, nodename=nodename)

    async def start(self) -> HareNode:
        await self.transport.connect()
        await self.revocations.subscribe(self.transport)
        await self.server.subscribe(self.transport)
        return self

    async def stop(self) -> None:
        await self.server.close()
        await self.transport.close()


@pytest.fixture
async def nodes(vhost_url: str) -> AsyncIterator[list[HareNode]]:
    started: list[HareNode] = []
    yield started
    for node in started:
        await node.stop()


async def _node(nodes: list[HareNode], url: str, unique: str) -> HareNode:
    node = await HareNode(url, f"hare-{unique}@testhost").start()
    nodes.append(node)
    return node


@pytest.fixture
async def control(vhost_url: str) -> AsyncIterator[Control]:
    transport = AmqpTransport(vhost_url, connect_timeout=10, publish_timeout=10)
    await transport.connect()
    yield Control(transport)
    await transport.close()


def _celery_client(url: str) -> Any:
    from celery import Celery

    return Celery("client", broker=url)


async def test_a_celery_client_inspects_a_hare_worker(
    vhost_url: str, nodes: list[HareNode], unique: str
) -> None:
    node = await _node(nodes, vhost_url, unique)
    name = node.server.nodename

    def celery_side() -> dict[str, Any]:
        app = _celery_client(vhost_url)
        try:
            inspect = app.control.inspect(timeout=1)
            return {
                "ping": inspect.ping(),
                "registered": inspect.registered(),
                "stats": inspect.stats(),
                "revoke": app.control.revoke("from-celery", reply=True),
                "revoked": inspect.revoked(),
            }
        finally:
            app.close()

    seen = await asyncio.to_thread(celery_side)

    assert seen["ping"] == {name: {"ok": "pong"}}
    assert seen["registered"] == {name: ["shop.add", "shop.mul"]}
    assert seen["stats"][name]["pool"] == {"max-concurrency": 8}
    assert seen["revoke"] == [{name: {"ok": "tasks {'from-celery'} flagged as revoked"}}]
    assert seen["revoked"] == {name: ["from-celery"]}
    assert node.revocations.is_revoked("from-celery")
    # A Celery client writes no stream entry: the hare worker wrote one for later workers.
    later = Revocations()
    transport = AmqpTransport(vhost_url, connect_timeout=10)
    await transport.connect()
    try:
        await eventually(lambda: _replays(later, transport, "from-celery"), within=20)
    finally:
        await transport.close()


async def _replays(revocations: Revocations, transport: AmqpTransport, task_id: str) -> bool:
    await revocations.subscribe(transport)
    await revocations.close()
    return revocations.is_revoked(task_id)


async def test_celery_inspect_ping_command_sees_a_hare_worker(
    vhost_url: str, nodes: list[HareNode], unique: str
) -> None:
    node = await _node(nodes, vhost_url, unique)
    command = [sys.executable, "-m", "celery", "-b", vhost_url, "inspect", "ping"]
    command += ["-d", node.server.nodename, "--timeout", "5"]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{node.server.nodename}: OK" in done.stdout
    assert "pong" in done.stdout
    assert "1 node online." in done.stdout


@pytest.fixture
def celery_worker(vhost_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery 5.7 worker (solo pool) on the private vhost, started by the test."""
    (tmp_path / "ctlapp.py").write_text(
        textwrap.dedent(
            """
            import os
            from celery import Celery

            app = Celery("ctlapp", broker=os.environ["CTL_BROKER"])

            @app.task(name="ctl.add")
            def add(x, y):
                return x + y
            """
        )
    )
    env = os.environ | {"CTL_BROKER": vhost_url, "PYTHONPATH": str(tmp_path)}
    log = (tmp_path / "worker.log").open("wb")
    command = [sys.executable, "-m", "celery", "-A", "ctlapp", "worker", "-P", "solo"]
    command += ["-n", CELERY_NODE, "--loglevel", "info"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        print((tmp_path / "worker.log").read_text(errors="replace")[-4000:])


async def test_hare_control_reaches_a_celery_worker(
    vhost_url: str,
    nodes: list[HareNode],
    unique: str,
    control: Control,
    celery_worker: subprocess.Popen[bytes],
) -> None:
    # A hare worker that knows a revoked id before the Celery worker starts: Celery's mingle
    # (a `hello` broadcast at start) must pick it up from the hare worker.
    node = await _node(nodes, vhost_url, unique)
    node.revocations.apply(["known-before"])

    async def celery_answers() -> bool:
        if celery_worker.poll() is not None:
            raise AssertionError(f"the Celery worker exited with {celery_worker.returncode}")
        replies = await control.ping(destination=[CELERY_NODE], timeout=1)
        return replies == [{CELERY_NODE: {"ok": "pong"}}]

    await eventually(celery_answers, within=90, interval=0.2)

    replies = await control.revoke("from-hare", reply=True, timeout=2)

    assert {CELERY_NODE, node.server.nodename} == {name for r in replies for name in r}
    assert {CELERY_NODE: {"ok": "tasks {'from-hare'} flagged as revoked"}} in replies

    def celery_revoked() -> Any:
        app = _celery_client(vhost_url)
        try:
            return app.control.inspect(timeout=2, destination=[CELERY_NODE]).revoked()
        finally:
            app.close()

    revoked = await asyncio.to_thread(celery_revoked)
    assert set(revoked[CELERY_NODE]) >= {"from-hare", "known-before"}
    # (known-before came to Celery by mingle only: it was revoked here, not broadcast.)
    ours = (await control.inspect(destination=[node.server.nodename]).revoked()) or {}
    assert ours[node.server.nodename][-2:] == ["known-before", "from-hare"]


async def test_stream_revocation_reaches_running_and_later_workers(
    vhost_url: str, nodes: list[HareNode], unique: str, control: Control
) -> None:
    running = await _node(nodes, vhost_url, unique)

    # By the stream and by the broadcast: both reach it, and it terminates once.
    await control.revoke(["s-1", "s-2"], terminate=True)
    await eventually(lambda: running.revocations.is_revoked("s-2"), within=20)
    assert running.view.terminated == [["s-1", "s-2"]]

    later = await _node(nodes, vhost_url, unique + "b")
    assert later.revocations.is_revoked("s-1") and later.revocations.is_revoked("s-2")
    assert not later.revocations.is_revoked("s-3")
    assert later.view.terminated == [["s-1", "s-2"]]  # asked at replay; nothing ran there


async def test_stream_is_declared_as_a_durable_stream(vhost_url: str, control: Control) -> None:
    await control.revoke("declared")
    vhost = unquote(urlsplit(vhost_url).path.lstrip("/"))
    command = ["rabbitmqctl", "-q", "list_queues", "-p", vhost]
    command += ["name", "type", "durable", "arguments"]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )
    (line,) = [row for row in done.stdout.splitlines() if row.startswith(STREAM + "\t")]
    assert "\tstream\ttrue\t" in line
    assert '"x-max-age","1D"' in line
