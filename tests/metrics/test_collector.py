"""The worker's metrics on the memory broker: each outcome counted once, where the worker learns
it; the run time and lateness observed; the gauges back to 0; a prefork child's runs counted
in the worker that learns their verdict. A fresh registry per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hare import Hare, Ignore, Reject, Retry
from hare.core.envelope import Envelope, Properties
from hare.core.topology import work_queue
from hare.errors import MessageReturned
from hare.metrics.collector import MetricsMiddleware
from hare.metrics.transport import MeasuredTransport
from hare.testing import ManualClock, drain, eventually, memory_app, publish_raw, until
from hare.worker.worker import Worker
from tests.runtime import GOOD_BODY

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def metered(app: Hare, **options: Any) -> AsyncIterator[tuple[Worker, MetricsMiddleware]]:
    """A worker of `app` on queue "q" counted into a fresh registry."""
    worker = Worker(app, queues=["q"], concurrency=4, **options)
    metrics = MetricsMiddleware(app, CollectorRegistry()).install(worker)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    try:
        yield worker, metrics
    finally:
        worker.stop()
        await running
        metrics.uninstall()


def value(metrics: MetricsMiddleware, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def outcomes(metrics: MetricsMiddleware, task: str) -> dict[str, float]:
    """`hare_tasks_total` of `task` on "q", by outcome (those counted only)."""
    counted = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "hare_tasks_total" and labels["task"] == task:
                assert labels["queue"] == "q"
                counted[labels["outcome"]] = sample.value
    return counted


async def test_each_outcome_is_counted_once() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="q")
    attempts: list[int] = []

    @app.task(name="t.ok")
    async def ok() -> int:
        await clock.sleep(2)  # runs 2 s on the manual clock
        return 1

    @app.task(name="t.bad", max_retries=0)
    async def bad() -> None:
        raise ValueError("no")

    @app.task(name="t.flaky", max_retries=3)
    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise Retry(countdown=5, exc=ValueError("again"))

    @app.task(name="t.refused")
    async def refused() -> None:
        raise Reject("not this one")

    @app.task(name="t.skipped")
    async def skipped() -> None:
        raise Ignore()

    async with metered(app) as (worker, metrics):
        await ok.adelay()
        await bad.adelay()
        await flaky.adelay()
        await refused.adelay()
        await skipped.adelay()
        await until(lambda: worker.processed == 4, clock)  # all but ok, which sleeps
        assert value(metrics, "hare_tasks_running") == 1
        await clock.advance_by(5)  # ok ends; flaky's retry is due
        await until(lambda: worker.processed == 6, clock)
        await until(lambda: worker.in_flight == 0, clock)
        await clock.advance_by(1)  # a sample of the prefetch in use
        assert value(metrics, "hare_prefetch_in_use") == 0
        assert value(metrics, "hare_tasks_running") == 0
    assert outcomes(metrics, "t.ok") == {"received": 1, "started": 1, "succeeded": 1}
    assert outcomes(metrics, "t.bad") == {
        "received": 1,
        "started": 1,
        "failed": 1,
        "dead_lettered": 1,
    }
    assert outcomes(metrics, "t.flaky") == {
        "received": 2,
        "started": 2,
        "retried": 1,
        "succeeded": 1,
    }
    assert outcomes(metrics, "t.refused") == {
        "received": 1,
        "started": 1,
        "rejected": 1,
        "dead_lettered": 1,
    }
    assert outcomes(metrics, "t.skipped") == {"received": 1, "started": 1, "ignored": 1}
    # The run time is the manual clock's: 2 s for t.ok.
    assert value(metrics, "hare_task_run_seconds_sum", task="t.ok", queue="q") == 2
    assert value(metrics, "hare_task_run_seconds_count", task="t.flaky", queue="q") == 2
    # Only the retry had a due time: its lateness is observed once, and it was on time.
    assert value(metrics, "hare_task_lateness_seconds_count", task="t.flaky", queue="q") == 1
    assert value(metrics, "hare_task_lateness_seconds_sum", task="t.flaky", queue="q") < 1
    assert value(metrics, "hare_task_lateness_seconds_count", task="t.ok", queue="q") == 0
    info = {"version", "nodename", "pool", "concurrency"}
    [sample] = [
        s for f in metrics.registry.collect() for s in f.samples if s.name == "hare_worker_info"
    ]
    assert set(sample.labels) == info and sample.labels["nodename"] == worker.nodename


async def test_revoked_and_expired_messages_are_counted_unrun() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="q")

    @app.task(name="t.add")
    async def add(x: int, y: int) -> int:
        return x + y

    async with metered(app) as (worker, metrics):
        assert worker.revocations is not None
        worker.revocations.apply(["gone"])
        await add.aapply_async((1, 2), task_id="gone")
        past = datetime.now(UTC) - timedelta(seconds=5)
        await add.aapply_async((1, 2), expires=past)
        await until(lambda: len(outcomes(metrics, "t.add")) == 2, clock)
    assert outcomes(metrics, "t.add") == {"revoked": 1, "expired": 1}


async def test_a_message_for_no_known_task_is_an_unknown_dead_letter() -> None:
    app = memory_app(ManualClock(), default_queue="q")
    async with metered(app) as (worker, metrics):
        transport = (await app.publisher()).transport
        for n in range(3):  # a label per name would grow without bound
            await publish_raw(transport, "q", GOOD_BODY, headers={"task": f"t.no{n}", "id": str(n)})
        await eventually(lambda: outcomes(metrics, "unknown").get("dead_lettered") == 3)
        assert len(await drain(transport, "q.dead")) == 3


async def test_a_prefork_childs_runs_are_counted_in_the_worker() -> None:
    app = memory_app(default_queue="q")

    @app.task(name="t.sync_ok")
    def sync_ok() -> int:
        return 1

    @app.task(name="t.sync_bad", max_retries=0)
    def sync_bad() -> None:
        raise ValueError("no")

    async with metered(app, pool="prefork") as (worker, metrics):
        assert worker._parts is not None and worker._parts.runner.pool is not None
        for _ in range(3):
            await sync_ok.adelay()
        await sync_bad.adelay()
        await eventually(lambda: worker.processed == 4 and worker.in_flight == 0)
    assert outcomes(metrics, "t.sync_ok") == {"received": 3, "started": 3, "succeeded": 3}
    assert outcomes(metrics, "t.sync_bad")["failed"] == 1
    assert value(metrics, "hare_task_run_seconds_count", task="t.sync_ok", queue="q") == 3
    assert value(metrics, "hare_tasks_running") == 0


async def test_publish_confirms_and_reconnects_are_measured() -> None:
    app = memory_app(ManualClock(), default_queue="q")
    metrics = MetricsMiddleware(app, CollectorRegistry())
    transport = MeasuredTransport(app.make_transport(), metrics.families)
    await transport.connect()
    await transport.connect()  # connected again: a reconnect
    await transport.declare_queue(work_queue("q", "classic"))
    await transport.publish(
        Envelope(exchange="", routing_key="q", body=b"{}", properties=Properties())
    )
    with pytest.raises(MessageReturned):
        envelope = Envelope(exchange="", routing_key="nowhere", body=b"{}", properties=Properties())
        await transport.publish(envelope)
    await transport.close()
    assert value(metrics, "hare_reconnects_total") == 1
    assert value(metrics, "hare_publish_confirms_total", outcome="ack") == 1
    assert value(metrics, "hare_publish_confirms_total", outcome="returned") == 1
    assert value(metrics, "hare_publish_confirm_seconds_count") == 1
