"""Priorities on a real RabbitMQ: bands on quorum queues, x-max-priority on classic ones.

Asserted on the ledger of start order, never on time: a high-priority task published behind a
backlog starts long before the backlog is done.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hare import Hare, Retry, Task
from hare.context import current
from hare.core.topology import DEAD_SUFFIX
from hare.testing import Ledger, eventually, running_worker
from tests.amqp.helpers import amqp_app, delete_queues

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

BACKLOG = 2000
HIGH = 10


async def _cleanup(app: Hare, *queues: str) -> None:
    names = [name for queue in queues for name in (queue, queue + DEAD_SUFFIX)]
    await delete_queues((await app.publisher()).transport, *names)
    await app.aclose()


def _recording_app(url: str, queue: str, **settings: Any) -> tuple[Hare, Ledger, Task[Any, Any]]:
    """An app whose task `t.work(kind, n)` records its start on the ledger."""
    app = amqp_app(url, default_queue=queue, **settings)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.work")
    async def work(kind: str, n: int) -> None:
        ledger.record(kind, n)

    return app, ledger, work


async def test_high_tasks_overtake_a_backlog_of_low_ones_on_quorum_queues(
    amqp_url: str, unique: str
) -> None:
    queue = f"prio-{unique}"
    app, ledger, work = _recording_app(amqp_url, queue)
    try:
        for start in range(0, BACKLOG, 200):  # the backlog, all low (0-4 or none)
            await asyncio.gather(
                *(work.aapply_async(("low", n), priority=n % 5) for n in range(start, start + 200))
            )
        async with running_worker(app, queues=[queue], concurrency=2):
            await ledger.wait_for(20, within=30)  # the backlog is being worked through
            for n in range(HIGH):
                await work.aapply_async(("high", n), priority=5 + n % 5)
            await eventually(lambda: ledger.counts()["high"] == HIGH, within=30)
        kinds = [kind for kind, _ in ledger.runs]
        last_high = len(kinds) - 1 - kinds[::-1].index("high")
        lows_before = kinds[:last_high].count("low")  # about 20 + 2 per high on 2 cores
        assert lows_before < BACKLOG // 2, lows_before
        assert [n for kind, n in ledger.runs if kind == "high"] == list(range(HIGH))  # FIFO
    finally:
        await _cleanup(app, queue, queue + ".high")


async def test_a_retried_high_task_stays_in_the_high_band(amqp_url: str, unique: str) -> None:
    queue = f"prio-retry-{unique}"
    app = amqp_app(amqp_url, default_queue=queue)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.flaky", max_retries=3)
    async def flaky() -> None:
        context = current()
        assert context is not None
        ledger.record(str(context.queue), context.delivery_info.get("priority"))
        if len(ledger.runs) < 3:
            raise Retry(countdown=0.3)  # through the delay ladder

    try:
        async with running_worker(app, queues=[queue]):
            await flaky.aapply_async(priority=8)
            await ledger.wait_for(3, within=30)
        assert ledger.runs == [(queue + ".high", 8)] * 3
    finally:
        await _cleanup(app, queue, queue + ".high")


async def test_a_classic_queue_with_x_max_priority_orders_by_the_property(
    amqp_url: str, unique: str
) -> None:
    queue = f"prio-classic-{unique}"
    app, ledger, work = _recording_app(amqp_url, queue, queue_type="classic", queue_max_priority=10)
    try:
        for n in range(50):
            await work.aapply_async(("low", n), priority=1)
        for n in range(5):
            await work.aapply_async(("high", n), priority=8)
        async with running_worker(app, queues=[queue], concurrency=1):
            await ledger.wait_for(55, within=30)
        assert ledger.runs[:5] == [("high", n) for n in range(5)]
        assert ledger.runs[5:] == [("low", n) for n in range(50)]
    finally:
        await _cleanup(app, queue)
