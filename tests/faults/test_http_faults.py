"""HTTP pushes through faults: a SIGTERM drain and a cut connection during delivery.

200 pushes go to a server on 127.0.0.1 that answers each request 200 after 200 ms, while
`hare worker` processes deliver them. Mid-delivery the worker is told to stop (SIGTERM: it
drains, and a second worker takes what it handed back), or every connection of the suite's
vhost is closed (the worker reconnects; what it had not settled is delivered again).

Pushes are delivered at least once: every push must reach the server and every idempotency
key must be answered 2xx; requests beyond one per key are counted and printed, because a
receiver de-duplicates them by `Idempotency-Key` (docs/http-tasks.md). Both faults are
expected to cost none with one worker: the drain finishes what runs, and after a cut the
worker settles a redelivered copy of a push it delivered by that first delivery.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from hare import Hare
from hare.testing import eventually
from tests.faults.conftest import Broker, Figures, Workers, producer_app
from tests.http.server import PushServer, Reply, push_server

pytestmark = [pytest.mark.amqp, pytest.mark.fault, pytest.mark.anyio]

APP = "tests.apps.http_fault_app:app"
N = 200
#: Requests received before the fault.
BEFORE_FAULT = 40


@pytest.fixture
async def server() -> AsyncIterator[PushServer]:
    async with push_server() as server:
        yield server


async def _publish(app: Hare, url: str) -> set[str]:
    keys = [f"p{i}" for i in range(N)]
    await asyncio.gather(*(app.apush(url, json={"key": k}, task_id=k) for k in keys))
    return set(keys)


def _answered(server: PushServer) -> set[str]:
    return {r.headers["idempotency-key"] for r in server.answered}


def _report(server: PushServer, keys: set[str], scenario: str, figures: Figures) -> None:
    requested = Counter(r.headers["idempotency-key"] for r in server.ledger)
    answered = _answered(server)
    duplicates = {k: n for k, n in requested.items() if n > 1}
    print(
        f"{scenario}: {len(server.ledger)} requests for {len(keys)} pushes, "
        f"{sum(duplicates.values()) - len(duplicates)} duplicate(s): {duplicates}"
    )
    figures(scenario, pushes=len(keys), requests=len(server.ledger), duplicates=duplicates)
    assert set(requested) == keys, sorted(keys - set(requested))[:20]
    assert answered == keys, sorted(keys - answered)[:20]


async def _settled(app: Hare, queue: str) -> tuple[int, int]:
    transport = (await app.publisher()).transport
    return await transport.message_count(queue), await transport.message_count(queue + ".dead")


@pytest.mark.timeout(120)
async def test_a_sigterm_drain_mid_delivery_loses_no_push(
    fault_url: str,
    unique: str,
    workers: Workers,
    server: PushServer,
    cleanup: list[str],
    figures: Figures,
) -> None:
    queue = f"http-drain-{unique}"
    cleanup.append(queue)
    url = server.script("/hook", Reply(200, delay=0.2))
    first = workers.start(queue, name="first", app=APP, concurrency=16)
    app = producer_app(fault_url, queue)
    try:
        await first.wait_ready()
        keys = await _publish(app, url)
        await eventually(lambda: len(server.ledger) >= BEFORE_FAULT, within=30)
        assert await first.stop(within=60) == 0
        second = workers.start(queue, name="second", app=APP, concurrency=16)
        await second.wait_ready()
        await eventually(lambda: _answered(server) >= keys, within=60, interval=0.05)
        await asyncio.sleep(1.0)  # a late duplicate, if any, shows in the ledger
        assert await second.stop(within=60) == 0
        assert await _settled(app, queue) == (0, 0)
    finally:
        await app.aclose()
    _report(server, keys, "http push, SIGTERM drain mid-delivery", figures)


@pytest.mark.timeout(120)
async def test_a_cut_connection_mid_delivery_loses_no_push(
    fault_url: str,
    unique: str,
    workers: Workers,
    broker: Broker,
    server: PushServer,
    cleanup: list[str],
    figures: Figures,
) -> None:
    queue = f"http-cut-{unique}"
    cleanup.append(queue)
    url = server.script("/hook", Reply(200, delay=0.2))
    worker = workers.start(queue, name="worker", app=APP, concurrency=16)
    app = producer_app(fault_url, queue)
    try:
        await worker.wait_ready()
        keys = await _publish(app, url)
        await eventually(lambda: len(server.ledger) >= BEFORE_FAULT, within=30)
        await broker.close_connections()
        await app.aclose()  # the producer's connection was closed too
        await eventually(lambda: _answered(server) >= keys, within=60, interval=0.05)
        await asyncio.sleep(1.0)
        assert worker.alive
        assert await worker.stop(within=60) == 0
        assert await _settled(app, queue) == (0, 0)
    finally:
        await app.aclose()
    _report(server, keys, "http push, connection cut mid-delivery", figures)
