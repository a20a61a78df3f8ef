"""Bad input under load: 5,000 malformed messages interleaved with 5,000 good ones.

Every good task runs once; every bad message lands in `<queue>.dead` with the reason it could
not run; the worker process neither crashes nor restarts nor loses its connection.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from hare.core import protocol
from hare.core.envelope import Delivery, Envelope, Properties
from hare.core.message import Message
from hare.core.topology import DEAD_SUFFIX
from hare.testing import eventually
from hare.transport.base import Transport
from tests.apps.fault_app import Ledger
from tests.faults.conftest import Figures, Workers, producer_app

pytestmark = [pytest.mark.amqp, pytest.mark.fault, pytest.mark.anyio]

GOOD = BAD = 5_000
CONCURRENCY = 32
#: Extra positional arguments of an "oversized args" message: about 20 kB of JSON.
OVERSIZED = 10_000
KEY_HEADER = "fault-key"

Build = Callable[[str, random.Random], tuple[bytes, Properties]]


def encoded(
    key: str, *, task: str = "fault.work", args: tuple[object, ...] | None = None
) -> tuple[bytes, Properties]:
    """A well-formed `task` message (its body and properties), tagged with `key`."""
    message = Message(id=key, task=task, args=args if args is not None else (key, 1))
    body, properties = protocol.encode(message, now=time.time())
    headers = {**properties.headers, KEY_HEADER: key}
    return body, replace(properties, headers=headers)


def without(properties: Properties, header: str) -> Properties:
    headers = {k: v for k, v in properties.headers.items() if k != header}
    return replace(properties, headers=headers)


def random_bytes(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    # 0xff never occurs in UTF-8, so this can never decode as JSON by chance.
    return b"\xff" + rng.randbytes(63), encoded(key)[1]


def truncated_json(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    body, properties = encoded(key)
    return body[: rng.randint(1, len(body) - 2)], properties


def pickle_type(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    _, properties = encoded(key)
    return b"\x80\x04K\x01.", replace(properties, content_type="application/x-python-serialize")


def yaml_type(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    body, properties = encoded(key)
    return body, replace(properties, content_type="application/x-yaml")


def no_content_type(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    body, properties = encoded(key)
    return body, replace(properties, content_type=None, content_encoding=None)


def missing_task(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    body, properties = encoded(key)
    return body, without(properties, "task")


def missing_id(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    body, properties = encoded(key)
    return body, without(properties, "id")


def unknown_task(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    return encoded(key, task="fault.no_such_task")


def bad_eta(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    body, properties = encoded(key)
    return body, replace(properties, headers={**properties.headers, "eta": "next tuesday"})


def oversized_args(key: str, rng: random.Random) -> tuple[bytes, Properties]:
    return encoded(key, args=(key, 1, *([0] * OVERSIZED)))


#: kind -> (how to build one, the dead letter's reason)
KINDS: dict[str, tuple[Build, str]] = {
    "random bytes": (random_bytes, "undecodable"),
    "truncated JSON": (truncated_json, "undecodable"),
    "pickle content type": (pickle_type, "content-type-refused"),
    "yaml content type": (yaml_type, "content-type-refused"),
    "no content type": (no_content_type, "bad-body"),
    "missing task header": (missing_task, "missing-header"),
    "missing id header": (missing_id, "missing-header"),
    "unknown task": (unknown_task, "unknown-task"),
    "unparsable eta": (bad_eta, "bad-eta"),
    "oversized args": (oversized_args, "failed"),
}


async def take(transport: Transport, queue: str, n: int, within: float) -> list[Delivery]:
    """Consume (and ack) `n` messages from `queue`."""
    got: list[Delivery] = []
    enough = asyncio.Event()

    async def keep(delivery: Delivery) -> None:
        got.append(delivery)
        await transport.ack(delivery)
        if len(got) >= n:
            enough.set()

    consumer = await transport.consume(queue, keep, prefetch=500)
    try:
        async with asyncio.timeout(within):
            await enough.wait()
    finally:
        await consumer.cancel()
    return got


@pytest.mark.timeout(180)
async def test_bad_input_is_dead_lettered_with_its_reason_and_good_input_runs_once(
    fault_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
) -> None:
    queue = f"bad-{unique}"
    cleanup.append(queue)
    rng = random.Random(5)
    kinds = list(KINDS)
    bad_kind = {f"b{i}": kinds[i % len(kinds)] for i in range(BAD)}
    good = [f"g{i}" for i in range(GOOD)]
    app = producer_app(fault_url, queue, queue_type="classic")
    worker = workers.start(queue, queue_type="classic", concurrency=CONCURRENCY)
    started = time.monotonic()
    try:
        await worker.wait_ready()
        publisher = await app.publisher()
        transport = publisher.transport

        async def publish_bad(key: str) -> None:
            body, properties = KINDS[bad_kind[key]][0](key, rng)
            envelope = Envelope(exchange="", routing_key=queue, body=body, properties=properties)
            await transport.publish(envelope)

        bad = list(bad_kind)
        for first in range(0, GOOD, 250):
            sends: list[Awaitable[object]] = []
            for i in range(first, first + 250):
                sends.append(app.asend_task("fault.work", [good[i], 1], task_id=good[i]))
                sends.append(publish_bad(bad[i]))
            await asyncio.gather(*sends)

        await eventually(lambda: set(good) <= ledger.refresh().ended(), within=120, interval=0.1)
        dead_queue = queue + DEAD_SUFFIX
        await eventually(lambda: _at_least(transport, dead_queue, BAD), within=120, interval=0.1)
        elapsed = time.monotonic() - started
        dead = await take(transport, dead_queue, BAD, within=60)
        extra = await transport.message_count(dead_queue)
        left = await transport.message_count(queue)
        alive = worker.alive
        code = await worker.stop()
    finally:
        await app.aclose()

    ledger.refresh()
    log = worker.log()
    by_key = Counter(str(d.properties.headers.get(KEY_HEADER)) for d in dead)
    wrong = [
        (d.properties.headers.get(KEY_HEADER), d.properties.headers.get("hare-dead-reason"))
        for d in dead
        if d.properties.headers.get("hare-dead-reason")
        != KINDS[bad_kind.get(str(d.properties.headers.get(KEY_HEADER)), "random bytes")][1]
    ]
    reasons = Counter(str(d.properties.headers.get("hare-dead-reason")) for d in dead)
    figures(
        "bad input",
        queue_type="classic",
        good=GOOD,
        bad=BAD,
        bad_kinds=len(KINDS),
        dead_lettered=len(dead),
        reasons=dict(sorted(reasons.items())),
        good_duplicates=sum(1 for key in good if ledger.starts()[key] > 1),
        lost=len(set(good) - ledger.ended()) + len(set(bad_kind) - set(by_key)),
        worker_restarts=len(ledger.pids() | {worker.pid}) - 1,
        seconds=round(elapsed, 1),
        exit_code=code,
    )

    # Every good task ran exactly once, all in the one worker process, which never restarted
    # nor lost its connection, and which exits cleanly.
    assert ledger.starts() == Counter(dict.fromkeys(good, 1))
    assert ledger.ended() == set(good)
    assert ledger.pids() == {worker.pid} and alive and code == 0, worker.log_tail()
    assert "lost the broker connection" not in log, worker.log_tail()
    # (the one traceback per task that raised is its own, logged as Celery's worker logs it)
    assert "could not settle" not in log, worker.log_tail()
    assert log.count("Traceback") == log.count(" raised unexpected: "), worker.log_tail()
    # Every bad message is in the dead letters once, with the reason for its kind.
    assert (extra, left) == (0, 0)
    assert by_key == Counter(dict.fromkeys(bad_kind, 1))
    assert wrong == [], wrong[:10]
    for delivery in dead:
        headers = delivery.properties.headers
        assert headers["hare-dead-queue"] == queue
        assert headers["hare-dead-detail"]
        if headers["hare-dead-reason"] == "failed":
            assert headers["hare-dead-exception"] == "TypeError"
            assert headers["hare-dead-attempts"] == 1


async def _at_least(transport: Transport, queue: str, n: int) -> bool:
    return await transport.message_count(queue) >= n
