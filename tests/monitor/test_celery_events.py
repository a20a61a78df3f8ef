"""Celery's events from a hare worker (`worker_send_task_events`), on the memory broker: each
event is the one Celery's worker sends, field for field (built again with `celery.events.Event`
and Celery's dispatcher fields, and compared), published as Celery publishes it; without the
setting nothing is sent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery.events import Event
from celery.utils.time import utcoffset

from hare import Hare
from hare.core.topology import Binding, Queue
from hare.errors import Reject, Retry
from hare.monitor.event import EXCHANGE, SOFTWARE
from hare.testing import ManualClock, drain, memory_app, running_worker, until
from hare.transport.base import Transport

pytestmark = pytest.mark.anyio

#: The fields Celery's `EventDispatcher` adds to every event it sends.
DISPATCHER_FIELDS = ("hostname", "utcoffset", "pid", "clock")
#: What Celery's worker sends with each event type, besides the dispatcher's fields.
CELERY_FIELDS = {
    "worker-online": ("freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"),
    "worker-heartbeat": ("freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"),
    "worker-offline": ("freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"),
    "task-received": (
        "uuid", "name", "args", "kwargs", "root_id", "parent_id", "retries", "eta", "expires",
    ),
    "task-started": ("uuid",),
    "task-succeeded": ("uuid", "result", "runtime"),
    "task-failed": ("uuid", "exception", "traceback"),
    "task-retried": ("uuid", "exception", "traceback"),
    "task-rejected": ("uuid", "requeue"),
    "task-revoked": ("uuid", "terminated", "signum", "expired"),
}  # fmt: skip


async def listen(app: Hare) -> Transport:
    """A queue bound to every Celery event, as Flower's receiver binds one (`#`)."""
    transport = (await app.publisher()).transport
    await transport.declare_exchange(EXCHANGE)
    await transport.declare_queue(Queue(name="monitor", durable=False))
    await transport.bind(Binding(exchange="celeryev", destination="monitor", routing_key="#"))
    return transport


def shop(clock: ManualClock, **settings: Any) -> Hare:
    app = memory_app(clock, main="shop", default_queue="work", **settings)

    @app.task(name="shop.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="shop.boom")
    async def boom() -> None:
        raise ValueError("boom")

    @app.task(name="shop.again", max_retries=3)
    async def again() -> None:
        raise Retry(countdown=30)

    @app.task(name="shop.refuse")
    async def refuse() -> None:
        raise Reject("not today")

    return app


def celery_event(sent: dict[str, Any]) -> dict[str, Any]:
    """The event Celery's worker would send with the fields hare sent: `Event(type, ...)`
    with the dispatcher's fields and the worker's, nothing else."""
    kind = sent["type"]
    fields = {name: sent[name] for name in (*DISPATCHER_FIELDS, *CELERY_FIELDS[kind])}
    built: dict[str, Any] = Event(kind, timestamp=sent["timestamp"], **fields)
    return built


async def test_a_worker_sends_celerys_events_in_celerys_format() -> None:
    clock = ManualClock()
    app = shop(clock, worker_send_task_events=True)
    transport = await listen(app)
    past = datetime.fromtimestamp(clock.time(), UTC) - timedelta(seconds=5)
    async with running_worker(app, nodename="w1@host") as worker:
        await app.tasks["shop.add"].adelay(2, 3)
        await app.tasks["shop.boom"].adelay()
        await app.tasks["shop.again"].adelay()
        await app.tasks["shop.refuse"].adelay()
        await app.tasks["shop.add"].aapply_async((1, 1), expires=past)
        await until(lambda: worker.processed == 4, clock)
        await clock.advance_by(2.0)  # one heartbeat
        await until(lambda: True, clock)
    deliveries = await drain(transport, "monitor")
    events = [json.loads(d.body) for d in deliveries]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "worker-online" and kinds[-1] == "worker-offline", kinds
    assert "worker-heartbeat" in kinds
    for delivery, sent in zip(deliveries, events, strict=True):
        assert sent == celery_event(sent)  # the same keys as Celery's, no more, no fewer
        assert delivery.routing_key == sent["type"].replace("-", ".")
        assert delivery.properties.headers == {"hostname": "w1@host"}
        assert delivery.properties.content_type == "application/json"
        assert delivery.properties.delivery_mode == 1
        assert sent["hostname"] == "w1@host" and sent["pid"] == os.getpid()
        assert sent["utcoffset"] == utcoffset()
        assert sent["timestamp"] == pytest.approx(clock.time(), abs=60)
    clocks = [e["clock"] for e in events]
    assert clocks == sorted(clocks) and len(set(clocks)) == len(clocks)

    online = events[0]
    assert online["freq"] == 2.0 and online["processed"] == 0 and len(online["loadavg"]) == 3
    assert {k: online[k] for k in SOFTWARE} == dict(SOFTWARE)
    assert events[-1]["processed"] == 4

    by_task: dict[str, list[dict[str, Any]]] = {}
    for sent in events:
        if "uuid" in sent:
            by_task.setdefault(sent["uuid"], []).append(sent)
    stories = {story[0].get("name", "?"): [e["type"] for e in story] for story in by_task.values()}
    assert stories == {
        "shop.add": ["task-received", "task-started", "task-succeeded"],
        "shop.boom": ["task-received", "task-started", "task-failed"],
        "shop.again": ["task-received", "task-started", "task-retried"],
        "shop.refuse": ["task-received", "task-started", "task-rejected"],
        "?": ["task-revoked"],  # expired: discarded before it was received
    }
    received, _, succeeded = next(s for s in by_task.values() if s[0].get("name") == "shop.add")
    assert received["args"] == "(2, 3)" and received["kwargs"] == "{}"
    assert received["retries"] == 0 and received["eta"] is None and received["expires"] is None
    assert received["root_id"] == received["uuid"] and received["parent_id"] is None
    assert succeeded["result"] == "5" and succeeded["runtime"] >= 0
    failed = next(s for s in by_task.values() if s[0].get("name") == "shop.boom")[-1]
    assert failed["exception"] == "ValueError('boom')"
    assert "raise ValueError" in failed["traceback"]
    retried = next(s for s in by_task.values() if s[0].get("name") == "shop.again")[-1]
    assert retried["exception"] == "None"  # Celery's: the repr of the Retry's exc (none here)
    rejected = next(s for s in by_task.values() if s[0].get("name") == "shop.refuse")[-1]
    assert rejected["requeue"] is False
    (revoked,) = by_task[next(k for k, s in by_task.items() if s[0]["type"] == "task-revoked")]
    assert revoked["expired"] is True and revoked["terminated"] is False
    assert revoked["signum"] is None


async def test_without_the_setting_nothing_is_sent() -> None:
    clock = ManualClock()
    app = shop(clock)
    transport = await listen(app)
    async with running_worker(app) as worker:
        await app.tasks["shop.add"].adelay(2, 3)
        await until(lambda: worker.processed == 1, clock)
        await clock.advance_by(4.0)
    assert await drain(transport, "monitor") == []


async def test_a_revoked_task_is_announced_revoked() -> None:
    clock = ManualClock()
    app = shop(clock, worker_send_task_events=True)
    transport = await listen(app)
    async with running_worker(app) as worker:
        assert worker.revocations is not None
        worker.revocations.apply(["doomed"])
        await app.tasks["shop.add"].aapply_async((1, 2), task_id="doomed")
        await clock.yield_control()
    events = [json.loads(d.body) for d in await drain(transport, "monitor")]
    revoked = [e for e in events if e.get("uuid") == "doomed"]
    assert [e["type"] for e in revoked] == ["task-revoked"]
    assert revoked[0]["expired"] is False and revoked[0]["terminated"] is False


async def test_a_terminated_task_is_announced_revoked_with_its_signal_number() -> None:
    clock = ManualClock()
    app = shop(clock, worker_send_task_events=True)
    forever = asyncio.Event()

    @app.task(name="shop.wait")
    async def wait() -> None:
        await forever.wait()

    transport = await listen(app)
    async with running_worker(app) as worker:
        assert worker.revocations is not None
        await app.tasks["shop.wait"].aapply_async(task_id="stuck")
        await until(lambda: worker.in_flight == 1, clock)
        await clock.yield_control()
        assert worker.revocations.apply(["stuck"], terminate=True, signal="SIGTERM") == ["stuck"]
        await until(lambda: worker.processed == 1, clock)
    events = [json.loads(d.body) for d in await drain(transport, "monitor")]
    story = [e for e in events if e.get("uuid") == "stuck"]
    assert [e["type"] for e in story] == ["task-received", "task-started", "task-revoked"]
    assert story[-1]["terminated"] is True and story[-1]["signum"] == signal.SIGTERM.value
    assert story[-1]["expired"] is False
    assert sum(e["type"] == "task-revoked" for e in events) == 1  # not twice (signal + run)


async def test_another_workers_tasks_are_not_announced() -> None:
    clock = ManualClock()
    app = shop(clock, worker_send_task_events=True)
    transport = await listen(app)
    async with (
        running_worker(app, nodename="w1@host") as one,
        running_worker(app, nodename="w2@host") as two,
    ):
        for n in range(6):
            await app.tasks["shop.add"].adelay(n, n)
        await until(lambda: one.processed + two.processed == 6, clock)
    events = [json.loads(d.body) for d in await drain(transport, "monitor")]
    for kind in ("task-received", "task-started", "task-succeeded"):
        sent = [e for e in events if e["type"] == kind]
        assert len(sent) == 6  # each once, by the worker that ran it (both listen to signals)
        assert len({e["uuid"] for e in sent}) == 6
    offline = {e["hostname"]: e["processed"] for e in events if e["type"] == "worker-offline"}
    assert offline == {"w1@host": one.processed, "w2@host": two.processed}
