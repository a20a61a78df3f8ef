"""Remote control called as Celery's callers call it: None meaning "the default".

`AsyncResult(id).revoke()` passes `timeout=None` and `signal=None` down to the control
client (Celery's own code does); both must mean the default, never reach a comparison.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from hare.control.client import DEFAULT_TIMEOUT, Control
from hare.control.revocation_stream import Revocations
from hare.control.server import ControlServer
from hare.errors import ConfigurationError, NotSupportedError
from hare.testing import ManualClock
from hare.transport.memory.transport import MemoryBroker, MemoryTransport
from hare_compat import Celery


class _View:
    def active(self) -> list[dict[str, Any]]:
        return []

    def reserved(self) -> list[dict[str, Any]]:
        return []

    def registered(self, taskinfoitems: Any = None, builtins: bool = False) -> list[str]:
        return []

    def stats(self) -> dict[str, Any]:
        return {}

    def queues(self) -> list[str]:
        return []

    def query(self, ids: Any) -> dict[str, list[Any]]:
        return {}

    def scheduled(self) -> list[dict[str, Any]]:
        return []

    def running_headers(self) -> dict[str, Any]:
        return {}

    def terminate(self, ids: Any, signal: str) -> list[str]:
        return []


@pytest.fixture
async def wire() -> AsyncIterator[tuple[ManualClock, Control, Revocations]]:
    """A hare client and one node (`hare@a`) on a memory broker with a manual clock."""
    clock = ManualClock()
    broker = MemoryBroker(clock=clock)
    node, client = MemoryTransport(broker), MemoryTransport(broker)
    await node.connect()
    await client.connect()
    revocations = Revocations(clock=clock, terminate=_View().terminate)
    server = ControlServer(_View(), revocations, nodename="hare@a", clock=clock)
    await revocations.subscribe(node)
    await server.subscribe(node)
    try:
        yield clock, Control(client, clock=clock), revocations
    finally:
        await client.close()
        await node.close()


async def _waited(clock: ManualClock, call: Any, seconds: float) -> Any:
    task = asyncio.ensure_future(call)
    await clock.advance_by(seconds)
    return await task


@pytest.mark.anyio
async def test_timeout_and_signal_none_mean_the_defaults(
    wire: tuple[ManualClock, Control, Revocations],
) -> None:
    clock, control, revocations = wire
    replies = await _waited(
        clock,
        control.revoke("t-1", signal=None, reply=True, timeout=None),
        DEFAULT_TIMEOUT,
    )
    assert replies == [{"hare@a": {"ok": "tasks {'t-1'} flagged as revoked"}}]
    assert "t-1" in revocations.revoked_ids()
    assert await _waited(clock, control.ping(timeout=None), DEFAULT_TIMEOUT) == [
        {"hare@a": {"ok": "pong"}}
    ]
    assert await _waited(clock, control.inspect(timeout=None).ping(), DEFAULT_TIMEOUT) == {
        "hare@a": {"ok": "pong"}
    }
    with pytest.raises(ConfigurationError, match="timeout"):
        await control.broadcast("ping", timeout=0)


@pytest.mark.anyio
async def test_broadcast_calls_back_with_each_reply(
    wire: tuple[ManualClock, Control, Revocations],
) -> None:
    clock, control, _ = wire
    seen: list[dict[str, Any]] = []
    replies = await control.broadcast(
        "ping", destination=["hare@a"], callback=seen.append, timeout=None
    )
    assert seen == replies == [{"hare@a": {"ok": "pong"}}]
    assert clock.monotonic() == 0  # the limit (one destination) ended the wait


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("control", broker="memory://", backend="memory://", set_as_current=False)
    yield app
    app.close()


def test_celerys_plainest_revoke_works(app: Celery) -> None:
    result = app.AsyncResult("never-ran")
    result.revoke()  # Celery's defaults: signal=None, timeout=None
    result.revoke(terminate=True, signal=None, timeout=None)
    assert app.control.revoke("never-ran") == []
    assert app.control.revoke(["a", "b"], signal=None, timeout=None) == []
    assert app.control.terminate("never-ran") == []


def test_inspect_reaches_every_command_celery_has(app: Celery) -> None:
    inspect = app.control.inspect(timeout=0.01)
    assert inspect.ping() is None and inspect.conf() is None  # no worker: nobody answered
    assert inspect.query_task("a", "b") is None and inspect.registered("rate_limit") is None


@pytest.mark.parametrize(
    ("command", "arguments"),
    [
        ("rate_limit", ("tasks.add", "10/m")),
        ("time_limit", ("tasks.add",)),
        ("add_consumer", ("q",)),
        ("cancel_consumer", ("q",)),
        ("shutdown", ()),
        ("pool_grow", ()),
        ("autoscale", (4, 1)),
        ("enable_events", ()),
    ],
)
def test_commands_hare_workers_would_not_obey_are_refused_by_name(
    app: Celery, command: str, arguments: tuple[Any, ...]
) -> None:
    with pytest.raises(NotSupportedError, match=rf"app\.control\.{command}\(\)"):
        getattr(app.control, command)(*arguments)


def test_connections_of_their_own_are_refused(app: Celery) -> None:
    with pytest.raises(NotSupportedError, match="connection"):
        app.control.revoke("x", connection=object())
    with pytest.raises(NotSupportedError, match="connection"):
        app.control.broadcast("ping", connection=object())
    with pytest.raises(TypeError, match="nonsense"):
        app.control.revoke("x", nonsense=1)


def test_purge_empties_the_task_queues(app: Celery) -> None:
    assert app.control.purge() == 0  # the queue was never declared: nothing waits in it

    @app.task(shared=False, name="control.add")
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, 2)
    add.delay(3, 4)
    assert app.control.purge() == 2
    assert app.control.discard_all() == 0
