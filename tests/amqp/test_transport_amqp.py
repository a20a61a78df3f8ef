"""AmqpTransport on a real RabbitMQ: what the shared contract suite cannot show.

Connection deadlines, 406 on redeclare, returned and nacked publishes, the py-amqp header
encoding on the wire, prefetch, and what `close` and a lost connection do. Every queue and
exchange a test declares is deleted afterwards (the broker is shared).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import aiormq
import pytest

from hare.core.envelope import Delivery, Envelope, Properties
from hare.core.topology import Binding, Exchange, Queue
from hare.errors import (
    BrokerError,
    BrokerUnavailable,
    MessageReturned,
    PublishError,
    PublishNacked,
    PublishTimeout,
    TopologyMismatch,
)
from hare.transport.amqp.transport import AmqpTransport, mask_url
from hare.transport.base import Transport
from hare.transport.fieldtable import FieldTableError
from tests.amqp.helpers import amqp_app, delete_queues

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

#: Celery's `add.delay(2, 3)` headers (research/celery.md §2.12) with values that pamqp's
#: default encoder would write differently: small ints (`b`/`s`), a float (`f`), a big int.
CELERY_HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": "tasks.add",
    "id": "a32dd6c1-1aec-4491-b8d2-132c4a2a2aff",
    "shadow": None,
    "eta": None,
    "expires": None,
    "group": None,
    "group_index": None,
    "retries": 0,
    "timelimit": [300, 240],
    "root_id": "a32dd6c1-1aec-4491-b8d2-132c4a2a2aff",
    "parent_id": None,
    "argsrepr": "(2, 3)",
    "kwargsrepr": "{}",
    "origin": "gen31415@vm",
    "ignore_result": False,
    "replaced_task_nesting": 0,
    "stamped_headers": None,
    "stamps": {},
    "x-ratio": 0.1,
    "x-big": 2**40,
    "x-negative": -1,
}


def envelope(queue: str, body: bytes = b"{}", **properties: Any) -> Envelope:
    return Envelope(exchange="", routing_key=queue, body=body, properties=Properties(**properties))


@pytest.fixture
def names(unique: str) -> Callable[[str], str]:
    return lambda suffix: f"hare.test.{unique}.{suffix}"


@pytest.fixture
async def transport(amqp_url: str, unique: str) -> AsyncIterator[AmqpTransport]:
    """A connected transport; deletes the queues and exchanges named after `unique` after."""
    transport = AmqpTransport(amqp_url, connect_timeout=5, publish_timeout=10, name=unique)
    await transport.connect()
    yield transport
    await transport.close()
    await cleanup(amqp_url, unique)


async def cleanup(amqp_url: str, unique: str) -> None:
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        for suffix in ("a", "b", "q", "x", "y", "dest", "full"):
            await channel.queue_delete(f"hare.test.{unique}.{suffix}")
            await channel.exchange_delete(f"hare.test.{unique}.{suffix}")


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while True:
        outcome = check()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{check} did not become true within {within}s")
        await asyncio.sleep(0.05)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- connect ---------------------------------------------------------------------------------


async def test_closed_port_fails_fast_with_masked_urls() -> None:
    port = closed_port()
    transport = AmqpTransport(f"amqp://guest:s3cret@127.0.0.1:{port}/", connect_timeout=30)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        await transport.connect()
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert isinstance(caught.value.__cause__, Exception)
    assert not transport.is_connected


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts and then never says a word: a hung or blackholed broker."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_silent_broker_fails_at_the_deadline(silent_server: int) -> None:
    transport = AmqpTransport(f"amqp://guest:guest@127.0.0.1:{silent_server}/", connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="no broker within 1s: no answer from 127.0.0.1"):
        await transport.connect()
    assert 0.9 < time.monotonic() - started < 3


async def test_urls_are_tried_in_turn(amqp_url: str, silent_server: int) -> None:
    urls = [f"amqp://guest:guest@127.0.0.1:{closed_port()}/"]
    urls += [f"amqp://guest:guest@127.0.0.1:{silent_server}/", amqp_url]
    transport = AmqpTransport(urls, connect_timeout=4)
    started = time.monotonic()
    async with transport:
        assert transport.is_connected
    assert time.monotonic() - started < 4
    assert not transport.is_connected


def test_mask_url() -> None:
    assert mask_url("amqp://u:pw@h:5672/v?x=1") == "amqp://u:***@h:5672/v?x=1"
    assert mask_url("amqp://h/") == "amqp://h/"


# -- declare ---------------------------------------------------------------------------------


async def test_redeclare_with_other_arguments_is_a_topology_mismatch(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    queue = names("q")
    await transport.declare_queue(Queue(name=queue, arguments={"x-queue-type": "classic"}))
    with pytest.raises(TopologyMismatch, match="PRECONDITION_FAILED - inequivalent arg") as caught:
        await transport.declare_queue(Queue(name=queue, arguments={"x-queue-type": "quorum"}))
    assert queue in str(caught.value)
    with pytest.raises(TopologyMismatch):
        await transport.declare_exchange(Exchange(name="amq.direct", type="topic"))
    # The declare channel was reopened: the transport goes on working.
    await transport.declare_queue(Queue(name=queue, arguments={"x-queue-type": "classic"}))
    await transport.publish(envelope(queue))
    assert await transport.message_count(queue) == 1
    assert transport.is_connected


async def test_missing_queue_is_a_broker_error_not_a_mismatch(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    with pytest.raises(BrokerError, match="NOT_FOUND") as caught:
        await transport.message_count(names("q"))
    assert not isinstance(caught.value, TopologyMismatch)
    await transport.delete_queue(names("q"))  # deleting a missing queue is fine
    await transport.declare_queue(Queue(name=names("q")))
    assert await transport.message_count(names("q")) == 0


async def test_exchange_to_exchange_binding_routes(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    await transport.declare_exchange(Exchange(name=names("x"), type="topic"))
    await transport.declare_exchange(Exchange(name=names("y"), type="direct"))
    await transport.declare_queue(Queue(name=names("dest")))
    await transport.bind(
        Binding(exchange=names("x"), destination=names("y"), routing_key="#", to_exchange=True)
    )
    await transport.bind(Binding(exchange=names("y"), destination=names("dest"), routing_key="k"))
    await transport.publish(
        Envelope(exchange=names("x"), routing_key="k", body=b"1", properties=Properties())
    )
    assert await transport.message_count(names("dest")) == 1
    assert [type(item).__name__ for item in transport.declared] == [
        "Exchange", "Exchange", "Queue", "Binding", "Binding"
    ]  # fmt: skip


# -- publish ---------------------------------------------------------------------------------


async def test_unroutable_publish_is_returned(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    with pytest.raises(MessageReturned) as caught:
        await transport.publish(envelope(names("nowhere")))
    assert caught.value.reply_code == 312
    assert caught.value.routing_key == names("nowhere")
    await transport.publish(envelope(names("nowhere")), mandatory=False)  # silently dropped


async def test_publish_to_missing_exchange_fails_and_publishing_goes_on(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    await transport.declare_queue(Queue(name=names("q")))
    missing = Envelope(exchange=names("x"), routing_key="k", body=b"", properties=Properties())
    with pytest.raises(PublishError, match="NOT_FOUND"):
        await transport.publish(missing)
    await transport.publish(envelope(names("q")))
    assert await transport.message_count(names("q")) == 1


async def test_unencodable_header_fails_before_sending(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    await transport.declare_queue(Queue(name=names("q")))
    with pytest.raises(FieldTableError, match="header bad"):
        await transport.publish(envelope(names("q"), headers={"bad": {1, 2}}))
    # aiormq rolled its delivery tag back: later confirms still match their publishes.
    await asyncio.gather(*(transport.publish(envelope(names("q"))) for _ in range(20)))
    assert await transport.message_count(names("q")) == 20


async def test_full_queue_with_reject_publish_nacks(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    full = Queue(
        name=names("full"),
        arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    await transport.declare_queue(full)
    await transport.publish(envelope(full.name))
    with pytest.raises(PublishNacked):
        await transport.publish(envelope(full.name))


async def test_no_confirm_in_time_is_a_publish_timeout(
    transport: AmqpTransport, amqp_url: str, names: Callable[[str], str], monkeypatch: Any
) -> None:
    await transport.declare_queue(Queue(name=names("q")))
    async with AmqpTransport(amqp_url, publish_timeout=0.3) as impatient:
        await impatient.publish(envelope(names("q")))  # opens the publish channel

        async def never_confirmed(*args: Any, **kwargs: Any) -> None:
            await asyncio.Event().wait()  # a broker that never confirms

        monkeypatch.setattr(impatient._channels["publish"], "basic_publish", never_confirmed)
        started = time.monotonic()
        with pytest.raises(PublishTimeout, match="no confirm within 0.3s") as caught:
            await impatient.publish(envelope(names("q")))
        assert 0.25 < time.monotonic() - started < 2
        assert caught.value.routing_key == names("q")
        outcomes = await asyncio.gather(
            *(impatient.publish(envelope(names("q"))) for _ in range(50)), return_exceptions=True
        )
        assert all(isinstance(outcome, PublishTimeout) for outcome in outcomes)
        # A cancellation from outside stays a cancellation, and leaves nothing behind.
        pending = asyncio.create_task(impatient.publish(envelope(names("q"))))
        await asyncio.sleep(0.05)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert not impatient._inflight and not impatient._expired


async def test_concurrent_publishes_are_all_confirmed(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    await transport.declare_queue(Queue(name=names("q")))
    await asyncio.gather(*(transport.publish(envelope(names("q"), b"%d" % i)) for i in range(500)))
    assert await transport.message_count(names("q")) == 500


# -- headers on the wire ---------------------------------------------------------------------


async def test_celery_headers_round_trip_through_the_broker(
    transport: AmqpTransport, amqp_url: str, names: Callable[[str], str]
) -> None:
    queue = names("q")
    await transport.declare_queue(Queue(name=queue))
    properties = Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=CELERY_HEADERS,
        correlation_id=CELERY_HEADERS["id"],
        reply_to="a797c82b",
        priority=0,
        expiration="60000",
        message_id="m-1",
        timestamp=1_700_000_000,
        type="task",
        app_id="hare",
    )
    await transport.publish(envelope(queue, b"[[2, 3], {}, {}]", **properties_dict(properties)))
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        raw = await channel.basic_get(queue, no_ack=True)
    headers = raw.header.properties.headers
    assert headers == CELERY_HEADERS
    # Published in py-amqp's order, not pamqp's sorted keys; RabbitMQ 3.13+ re-encodes the table
    # on delivery and hands it back sorted by key (research/rabbitmq4 D.3), which Celery and
    # py-amqp read into a dict all the same.
    assert list(headers) in (list(CELERY_HEADERS), sorted(CELERY_HEADERS))
    assert headers["x-ratio"] == 0.1  # a double: pamqp's float32 would give 0.10000000149...
    assert type(headers["retries"]) is int and type(headers["ignore_result"]) is bool
    assert raw.body == b"[[2, 3], {}, {}]"
    await transport.publish(envelope(queue, b"again", **properties_dict(properties)))
    delivery = await transport.get(queue)
    assert delivery is not None
    assert delivery.properties == properties
    await transport.ack(delivery)


def properties_dict(properties: Properties) -> dict[str, Any]:
    return {name: getattr(properties, name) for name in Properties.__dataclass_fields__}


@pytest.fixture
def pyamqp(monkeypatch: pytest.MonkeyPatch) -> Any:
    path = os.environ.get("HARE_PYAMQP_PATH")
    if path:
        monkeypatch.syspath_prepend(path)
    return pytest.importorskip("amqp", reason="py-amqp not importable (set HARE_PYAMQP_PATH)")


async def test_pyamqp_reads_what_hare_publishes(
    transport: AmqpTransport, names: Callable[[str], str], pyamqp: Any, amqp_url: str
) -> None:
    # py-amqp <= 5.3.1 raises FrameSyntaxError on pamqp's default encoding of these headers.
    queue = names("q")
    await transport.declare_queue(Queue(name=queue))
    await transport.publish(envelope(queue, headers=CELERY_HEADERS))

    def read() -> Any:
        parts = urlsplit(amqp_url)
        connection = pyamqp.Connection(
            host=f"{parts.hostname}:{parts.port or 5672}",
            userid=parts.username or "guest",
            password=parts.password or "guest",
        )
        connection.connect()
        try:
            return connection.channel().basic_get(queue, no_ack=True)
        finally:
            connection.close()

    message = await asyncio.to_thread(read)
    assert message.properties["application_headers"] == CELERY_HEADERS


# -- consume, settle, close ------------------------------------------------------------------


async def test_prefetch_bounds_unacked_and_close_requeues(
    transport: AmqpTransport, amqp_url: str, names: Callable[[str], str]
) -> None:
    queue = names("q")
    await transport.declare_queue(Queue(name=queue))
    await asyncio.gather(*(transport.publish(envelope(queue, b"%d" % i)) for i in range(10)))
    received: list[Delivery] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery)

    consumer = await transport.consume(queue, handler, prefetch=3)
    assert consumer.is_active and consumer.queue == queue
    await eventually(lambda: len(received) >= 3)
    await asyncio.sleep(0.3)  # would a fourth come without an ack?
    assert len(received) == 3
    assert await transport.message_count(queue) == 7
    await transport.ack(received[0])
    await eventually(lambda: len(received) >= 4)
    await asyncio.sleep(0.2)
    assert len(received) == 4
    assert [d.body for d in received] == [b"0", b"1", b"2", b"3"]

    await transport.close()
    async with AmqpTransport(amqp_url) as other:

        async def all_back() -> bool:
            return await other.message_count(queue) == 9

        await eventually(all_back)
    with pytest.raises(BrokerError):  # never a silent ack on a closed transport
        await transport.ack(received[1])


async def test_reject_requeue_or_drop_and_cancel(
    transport: AmqpTransport, names: Callable[[str], str]
) -> None:
    queue = names("q")
    await transport.declare_queue(Queue(name=queue))
    await transport.publish(envelope(queue, b"one"))
    received: asyncio.Queue[Delivery] = asyncio.Queue()
    consumer = await transport.consume(queue, received.put, prefetch=1)
    first = await asyncio.wait_for(received.get(), 5)
    await transport.reject(first, requeue=True)
    again = await asyncio.wait_for(received.get(), 5)
    assert again.body == b"one" and again.redelivered
    assert transport.consumers == (consumer,)
    await consumer.cancel()
    assert not consumer.is_active
    assert consumer not in transport.consumers  # a reconnect must not restart it
    await transport.publish(envelope(queue, b"two"))
    await asyncio.sleep(0.2)
    assert received.empty()
    await transport.reject(again, requeue=False)  # still settleable after cancel
    assert await transport.message_count(queue) == 1
    assert (await transport.get(queue)) is not None
    assert (await transport.get(queue)) is None


async def test_handler_exception_leaves_delivery_unsettled(
    transport: AmqpTransport, names: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    queue = names("q")
    await transport.declare_queue(Queue(name=queue))
    await transport.publish(envelope(queue))
    seen = asyncio.Event()

    async def broken(delivery: Delivery) -> None:
        seen.set()
        raise ValueError("boom")

    await transport.consume(queue, broken, prefetch=1)
    await asyncio.wait_for(seen.wait(), 5)
    await asyncio.sleep(0.05)
    assert "delivery left unsettled" in caplog.text
    assert await transport.message_count(queue) == 0  # unacked, not lost


# -- losing the connection -------------------------------------------------------------------


def close_connection_named(name: str) -> None:
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "pid", "client_properties"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if name in line]
    assert pids, f"no connection named {name} in {listing!r}"
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "close_connection", pid, "test"], check=True, capture_output=True
        )


@pytest.fixture
def rabbitmqctl() -> Iterator[None]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not on PATH")
    yield


async def test_lost_connection_is_reported(
    transport: AmqpTransport, unique: str, names: Callable[[str], str], rabbitmqctl: None
) -> None:
    await transport.declare_queue(Queue(name=names("q")))
    received: asyncio.Queue[Delivery] = asyncio.Queue()
    consumer = await transport.consume(names("q"), received.put, prefetch=5)
    await asyncio.to_thread(close_connection_named, unique)
    await asyncio.wait_for(transport.connection_lost.wait(), 10)
    assert not transport.is_connected
    assert transport.close_reason is not None
    assert not consumer.is_active
    assert transport.consumers == (consumer,)  # kept, for a supervisor to start again
    with pytest.raises(BrokerUnavailable):
        await transport.publish(envelope(names("q")))
    await transport.connect()  # reconnected; the declared topology is remembered
    # The loss stays reported until the owner clears it: whoever reconnected (a publish,
    # say) must not hide from a worker that its consumers are gone.
    assert transport.connection_lost.is_set()
    transport.connection_lost.clear()
    assert [q.name for q in transport.declared if isinstance(q, Queue)] == [names("q")]
    await transport.publish(envelope(names("q")))
    again = await transport.consume(consumer.queue, consumer.handler, prefetch=consumer.prefetch)
    assert (await asyncio.wait_for(received.get(), 5)).queue == names("q")
    await again.cancel()


async def test_a_burst_of_first_publishes_shares_one_connection(amqp_url: str, unique: str) -> None:
    """500 concurrent first `adelay()` calls on a fresh app: one connection, 500 messages
    (each caller opened its own once, and 1,000 of them exhausted the broker's descriptors)."""
    app = amqp_app(amqp_url, default_queue=f"burst-{unique}")
    made: list[object] = []
    make = app.connections.make_transport

    def counting() -> Transport:
        transport = make()
        made.append(transport)
        return transport

    app.connections.make_transport = counting  # type: ignore[method-assign]

    @app.task(name="t.burst")
    async def burst(i: int) -> None:
        del i

    try:
        await asyncio.gather(*(burst.adelay(i) for i in range(500)))
        transport = (await app.publisher()).transport
        assert len(made) == 1
        assert await transport.message_count(f"burst-{unique}") == 500
        await delete_queues(transport, f"burst-{unique}", f"burst-{unique}.dead")
    finally:
        await app.aclose()
