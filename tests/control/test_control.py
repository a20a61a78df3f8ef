"""Remote control on the memory transport with a ManualClock: hare's `Control` client against
`ControlServer`s, and raw requests as Celery clients send them."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import pytest

from hare.control import pidbox
from hare.control.client import Control
from hare.control.revocation import STREAM, RevocationRecord, decode_entry
from hare.control.revocation_stream import Revocations
from hare.control.server import ControlServer
from hare.core.envelope import Delivery, Envelope, Properties
from hare.errors import BrokerUnavailable, ConfigurationError
from hare.testing import ManualClock
from hare.transport.memory.transport import MemoryBroker, MemoryTransport

pytestmark = pytest.mark.anyio

T = TypeVar("T")

TASK_INFO = {
    "id": "t-1",
    "name": "shop.add",
    "args": [1, 2],
    "kwargs": {},
    "type": "shop.add",
    "hostname": "hare@a",
    "time_start": 1.5,
    "acknowledged": False,
    "delivery_info": {"exchange": "", "routing_key": "default"},
    "worker_pid": 42,
}


class View:
    """What a worker reports (the `WorkerView` protocol), and what it was asked to stop."""

    def __init__(self, running: Sequence[str] = ()) -> None:
        self.running = set(running)
        self.terminated: list[tuple[list[str], str]] = []
        self.fail = False

    def active(self) -> list[dict[str, Any]]:
        if self.fail:
            raise RuntimeError("view broke")
        return [TASK_INFO]

    def reserved(self) -> list[dict[str, Any]]:
        return []

    def registered(
        self, taskinfoitems: Sequence[str] | None = None, builtins: bool = False
    ) -> list[str]:
        return ["shop.mul", "shop.add"]

    def stats(self) -> dict[str, Any]:
        return {"pool": {"max-concurrency": 16}, "total": {"shop.add": 3}, "prefetch_count": 16}

    def queues(self) -> list[str]:
        return ["default"]

    def query(self, ids: Sequence[str]) -> dict[str, list[Any]]:
        return {}

    def scheduled(self) -> list[dict[str, Any]]:
        return []

    def running_headers(self) -> dict[str, Any]:
        return {}

    def terminate(self, ids: Sequence[str], signal: str) -> list[str]:
        self.terminated.append((list(ids), signal))
        return [task_id for task_id in ids if task_id in self.running]


class Node:
    def __init__(self, server: ControlServer, view: View, revocations: Revocations) -> None:
        self.server, self.view, self.revocations = server, view, revocations


class Env:
    def __init__(self, clock: ManualClock, broker: MemoryBroker) -> None:
        self.clock = clock
        self.broker = broker
        self.transports: list[MemoryTransport] = []

    async def connect(self) -> MemoryTransport:
        transport = MemoryTransport(self.broker)
        await transport.connect()
        self.transports.append(transport)
        return transport

    async def node(self, nodename: str, running: Sequence[str] = ()) -> Node:
        view = View(running)
        revocations = Revocations(clock=self.clock, terminate=view.terminate)
        server = ControlServer(view, revocations, nodename=nodename, clock=self.clock)
        transport = await self.connect()
        await revocations.subscribe(transport)
        await server.subscribe(transport)
        return Node(server, view, revocations)

    async def control(self) -> Control:
        return Control(await self.connect(), clock=self.clock)

    async def waited(self, call: Awaitable[T], seconds: float = 1.0) -> T:
        """Run `call`, which waits `seconds` on the clock for replies, to its end."""
        import asyncio

        task = asyncio.ensure_future(call)
        await self.clock.advance_by(seconds)
        return await task

    async def raw_request(self, body: dict[str, Any], **headers: Any) -> None:
        """Publish a request as a Celery client does (no hare client involved)."""
        transport = await self.connect()
        await transport.publish(
            Envelope(
                exchange="celery.pidbox",
                routing_key="",
                body=json.dumps(body).encode(),
                properties=Properties(content_type="application/json", headers=headers),
            ),
            mandatory=False,
        )
        await self.clock.yield_control()

    async def stream_records(self) -> list[RevocationRecord]:
        transport = await self.connect()
        found: list[RevocationRecord] = []

        async def handler(delivery: Delivery) -> None:
            entry = decode_entry(delivery.body)
            if isinstance(entry, RevocationRecord):
                found.append(entry)
            await transport.ack(delivery)

        consumer = await transport.consume(
            STREAM, handler, prefetch=100, arguments={"x-stream-offset": "first"}
        )
        await self.clock.yield_control()
        await consumer.cancel()
        return found


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = ManualClock()
    environment = Env(clock, MemoryBroker(clock=clock))
    try:
        yield environment
    finally:
        for transport in environment.transports:
            await transport.close()


async def test_inspect_ping_collects_every_node(env: Env) -> None:
    await env.node("hare@a")
    await env.node("hare@b")
    control = await env.control()

    assert await env.waited(control.inspect().ping()) == {
        "hare@a": {"ok": "pong"},
        "hare@b": {"ok": "pong"},
    }
    assert await env.waited(control.ping()) in (
        [{"hare@a": {"ok": "pong"}}, {"hare@b": {"ok": "pong"}}],
        [{"hare@b": {"ok": "pong"}}, {"hare@a": {"ok": "pong"}}],
    )


async def test_destination_reaches_only_those_nodes_and_returns_at_the_limit(env: Env) -> None:
    await env.node("hare@a")
    await env.node("hare@b")
    control = await env.control()

    # limit = len(destination): returns once b answered, without waiting out the timeout.
    replies = await control.inspect(destination=["hare@b"]).ping()

    assert replies == {"hare@b": {"ok": "pong"}}
    assert env.clock.monotonic() == 0


async def test_nobody_answering_gives_none(env: Env) -> None:
    control = await env.control()
    assert await env.waited(control.inspect(timeout=2).ping(), 2) is None
    assert env.broker.queue_names() == ()  # the reply queue was deleted


async def test_inspect_commands_in_celerys_shapes(env: Env) -> None:
    await env.node("hare@a")
    inspect = (await env.control()).inspect(destination=["hare@a"])

    assert await inspect.active() == {"hare@a": [TASK_INFO]}
    assert await inspect.registered() == {"hare@a": ["shop.add", "shop.mul"]}
    assert await inspect.reserved() == {"hare@a": []}
    assert await inspect.scheduled() == {"hare@a": []}
    assert await inspect.revoked() == {"hare@a": []}
    stats = (await inspect.stats() or {})["hare@a"]
    assert stats["pool"] == {"max-concurrency": 16}
    assert stats["total"] == {"shop.add": 3}
    assert isinstance(stats["pid"], int) and stats["uptime"] == 0
    assert {"utime", "stime", "maxrss"} <= set(stats["rusage"])
    (queue,) = (await inspect.active_queues() or {})["hare@a"]
    assert (queue["name"], queue["routing_key"], queue["durable"]) == ("default", "default", True)
    assert "hare:" in (await inspect.report() or {})["hare@a"]["ok"]
    assert (await inspect.clock() or {})["hare@a"]["clock"] > 0


async def test_unknown_command_and_failing_handler_reply_with_an_error(env: Env) -> None:
    node = await env.node("hare@a")
    control = await env.control()

    (unknown,) = await control.broadcast("pool_grow", {"n": 1}, destination=["hare@a"])
    assert "pool_grow" in unknown["hare@a"]["error"]

    node.view.fail = True
    assert await control.inspect(destination=["hare@a"]).active() == {
        "hare@a": {"error": "RuntimeError('view broke')"}
    }


async def test_malformed_requests_are_dropped_and_the_server_goes_on(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    await env.node("hare@a")
    for body in ({"no": "method"}, {"method": "ping", "arguments": "x"}, [1]):
        await env.raw_request(body)  # type: ignore[arg-type]
    transport = await env.connect()
    await transport.publish(
        Envelope(exchange="celery.pidbox", routing_key="", body=b"\xff", properties=Properties())
    )
    await env.clock.yield_control()

    assert await (await env.control()).inspect(destination=["hare@a"]).ping() == {
        "hare@a": {"ok": "pong"}
    }
    dropped = [r for r in caplog.records if "dropping a control request" in r.getMessage()]
    assert len(dropped) == 4


async def test_expired_request_gets_no_reply_but_a_revoke_still_counts(env: Env) -> None:
    node = await env.node("hare@a")
    listener = await env.connect()
    await listener.declare_queue(pidbox.reply_queue("mine"))
    await listener.bind(pidbox.reply_binding("mine"))
    reply_to = pidbox.ReplyTo("reply.celery.pidbox", "mine")
    now = env.clock.time()
    requests = [
        ("ping", {}, now - 11),  # past `expires` by more than the server's 10 s for skew
        ("revoke", {"task_id": "late"}, now - 11),
        ("ping", {}, now - 9),  # late, but within the allowance for skew
    ]
    for method, arguments, expires in requests:
        body = pidbox.encode_request(method, arguments, ticket=method, reply_to=reply_to)
        await env.raw_request(json.loads(body), expires=expires)

    replies = []
    while (delivery := await listener.get(pidbox.reply_queue("mine").name)) is not None:
        replies.append((delivery.properties.headers["ticket"], json.loads(delivery.body)))
    assert replies == [("ping", {"hare@a": {"ok": "pong"}})]
    assert node.revocations.is_revoked("late")


async def test_revoke_by_hare_is_written_once_and_reaches_later_workers(env: Env) -> None:
    running = await env.node("hare@a", running=["t-1"])
    control = await env.control()

    revoke = control.revoke(["t-1", "t-2"], terminate=True, reply=True, timeout=0.5)
    replies = await env.waited(revoke, 0.5)

    assert replies == [{"hare@a": {"ok": "terminate: t-1"}}]
    assert running.view.terminated == [(["t-1", "t-2"], "SIGTERM")]
    later = await env.node("hare@later")
    assert later.revocations.is_revoked("t-1") and later.revocations.is_revoked("t-2")
    records = await env.stream_records()
    assert [r.ids for r in records] == [("t-1", "t-2")]  # the server did not write it again


async def test_revoke_by_a_celery_client_is_written_to_the_stream_by_the_worker(env: Env) -> None:
    await env.node("hare@a")
    await env.raw_request({"method": "revoke", "arguments": {"task_id": "c-1"}})
    await env.clock.yield_control()

    later = await env.node("hare@later")
    assert later.revocations.is_revoked("c-1")
    assert [r.ids for r in await env.stream_records()] == [("c-1",)]


async def test_revoke_to_a_destination_is_not_persisted(env: Env) -> None:
    node = await env.node("hare@a")
    control = await env.control()
    replies = await control.revoke("d-1", destination=["hare@a"], reply=True)
    assert replies == [{"hare@a": {"ok": "tasks {'d-1'} flagged as revoked"}}]
    assert node.revocations.is_revoked("d-1")
    assert await env.stream_records() == []


async def test_terminate_of_unknown_tasks(env: Env) -> None:
    await env.node("hare@a")
    control = await env.control()
    replies = await control.terminate("nope", signal="KILL", destination=["hare@a"], reply=True)
    assert replies == [{"hare@a": {"ok": "terminate: tasks unknown"}}]


async def test_cast_without_reply(env: Env) -> None:
    node = await env.node("hare@a")
    control = await env.control()
    assert await control.revoke("quiet") == []
    await env.clock.yield_control()
    assert node.revocations.is_revoked("quiet")


async def test_hello_from_a_starting_celery_worker_swaps_revoked_ids(env: Env) -> None:
    node = await env.node("hare@a")
    control = await env.control()
    await control.revoke("ours")

    (reply,) = await control.broadcast(
        "hello", {"from_node": "celery@x", "revoked": ["theirs"]}, destination=["hare@a"]
    )
    assert reply["hare@a"]["revoked"] == ["ours", "theirs"]
    assert node.revocations.is_revoked("theirs")
    (own,) = await control.broadcast("hello", {"from_node": "hare@a"}, destination=["hare@a"])
    assert own == {"hare@a": None}


async def test_hello_takes_the_revoked_ids_of_celerys_limited_set_as_sent(env: Env) -> None:
    node = await env.node("hare@a")
    control = await env.control()
    # Celery 5 sends its LimitedSet's data, {id: [stamp, seq, id]}, stamps from its own clock.
    revoked = {"one": [10.0**9, 0, "one"], "two": [10.0**9, 1, "two"]}
    (reply,) = await control.broadcast(
        "hello", {"from_node": "celery@x", "revoked": revoked}, destination=["hare@a"]
    )
    assert reply["hare@a"]["revoked"] == ["one", "two"]
    assert node.revocations.is_revoked("one") and node.revocations.is_revoked("two")


async def test_a_reconnected_server_answers_again(env: Env) -> None:
    node = await env.node("hare@a")
    transport = env.transports[-1]
    control = await env.control()
    await transport.sever()
    assert await env.waited(control.inspect().ping()) is None

    await transport.connect()
    await node.revocations.subscribe(transport)
    await node.server.subscribe(transport)

    assert await control.inspect(destination=["hare@a"]).ping() == {"hare@a": {"ok": "pong"}}


async def test_a_queue_still_held_after_a_reconnect_is_a_broker_outage(env: Env) -> None:
    node = await env.node("hare@a")
    transport = env.transports[-1]
    await transport.sever()
    await env.node("hare@a")  # holds the exclusive queue now, as a stale connection would
    await transport.connect()
    with pytest.raises(BrokerUnavailable, match="still held"):
        await node.server.subscribe(transport)


async def test_a_nodename_in_use_is_a_configuration_error(env: Env) -> None:
    await env.node("hare@same")
    with pytest.raises(ConfigurationError, match="nodename"):
        await env.node("hare@same")


async def test_control_checks_its_arguments(env: Env) -> None:
    control = await env.control()
    with pytest.raises(ConfigurationError):
        await control.broadcast("ping", destination="hare@a")
    with pytest.raises(ConfigurationError):
        await control.broadcast("ping", timeout=0)
    with pytest.raises(ConfigurationError):
        await control.revoke([])
    with pytest.raises(ConfigurationError):
        ControlServer(View(), Revocations(), nodename="no-at-sign")


async def test_server_logs_at_warning_at_most_for_a_bad_request(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    await env.node("hare@a")
    with caplog.at_level(logging.DEBUG, logger="hare.control"):
        await env.raw_request({"method": "revoke", "arguments": {"task_id": []}}, clock=5)
    assert not [r for r in caplog.records if r.levelno > logging.ERROR]
