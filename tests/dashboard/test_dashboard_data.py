"""What the dashboard reads, without a browser: the ring of recent tasks from Celery's task
events, the event feed's decoding, the management API's rates, a stored result by id."""

from __future__ import annotations

import asyncio
import json
import warnings

from celery.events.event import Event

from hare import Hare
from hare.cli.management import _stats
from hare.dashboard.feed import EventFeed
from hare.dashboard.ring import TaskRing
from hare.dashboard.site import Config
from hare.dashboard.web import create_app
from hare.testing import running_worker

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 for its TestClient; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_the_ring_merges_a_tasks_events_in_celerys_format() -> None:
    ring = TaskRing()
    ring.apply(Event("task-received", uuid="a", name="t.add", args="(1, 2)", kwargs="{}"))
    ring.apply(Event("task-started", uuid="a", hostname="celery@w1"))
    ring.apply(Event("task-succeeded", uuid="a", result="3", runtime=0.5))
    ring.apply(Event("task-received", uuid="a", name="t.add"))  # late: it stays SUCCESS
    ring.apply(Event("worker-heartbeat", hostname="celery@w1", active=0, processed=1))
    seen = ring.get("a")
    assert seen is not None
    assert (seen.state, seen.name, seen.args, seen.result, seen.runtime) == (
        "SUCCESS",
        "t.add",
        "(1, 2)",
        "3",
        0.5,
    )
    assert seen.hostname == "celery@w1" and seen.received is not None
    assert set(ring.workers) == {"celery@w1"}


def test_the_ring_keeps_the_newest_tasks_only_and_finds_them() -> None:
    ring = TaskRing(capacity=3)
    for n in range(5):
        ring.apply(Event("task-failed", uuid=f"id-{n}", name=f"t.n{n}", exception="E()"))
    assert [seen.id for seen in ring.recent()] == ["id-4", "id-3", "id-2"]
    assert ring.get("id-0") is None and len(ring) == 3
    assert [seen.id for seen in ring.recent(search="id-3")] == ["id-3"]
    assert [seen.id for seen in ring.recent(search="n4")] == ["id-4"]
    assert ring.last_of("t.n2") is ring.get("id-2")
    assert ring.apply({"type": "task-failed"}) is None  # no uuid: nothing to merge
    assert ring.apply({"uuid": "x"}) is None  # no type


def test_the_feed_takes_single_and_batched_events_and_skips_garbage() -> None:
    ring = TaskRing()
    feed = EventFeed(Hare("t", broker="memory://", environ={}), ring)
    feed.take(json.dumps(Event("task-received", uuid="one", name="t.a")).encode())
    batch = [Event("task-received", uuid="two", name="t.b"), Event("task-revoked", uuid="two")]
    feed.take(json.dumps(batch).encode())
    feed.take(b"not json")
    feed.take(b'"a string"')
    assert ring.get("one") is not None and ring.get("one").state == "RECEIVED"  # type: ignore[union-attr]
    assert ring.get("two") is not None and ring.get("two").state == "REVOKED"  # type: ignore[union-attr]
    assert feed.queue.name.startswith("celeryev.") and feed.queue.auto_delete


def test_the_management_api_rates_are_read_when_given() -> None:
    row = {
        "name": "q",
        "messages_ready": 3,
        "messages_unacknowledged": 2,
        "consumers": 1,
        "message_stats": {"publish_details": {"rate": 4.5}, "deliver_get_details": {"rate": 2}},
    }
    stats = _stats(row)
    assert (stats.ready, stats.unacked, stats.consumers) == (3, 2, 1)
    assert (stats.publish_rate, stats.deliver_rate) == (4.5, 2.0)
    assert _stats({"name": "idle"}).publish_rate is None


def test_a_task_is_found_by_id_in_the_result_backend() -> None:
    app = Hare("shop", broker="memory://", result_backend="memory://", environ={})

    @app.task(name="t.add")
    async def add(x: int, y: int) -> int:
        return x + y

    async def run() -> str:
        sent = await app.asend_task("t.add", [2, 3])
        async with running_worker(app):
            assert await sent == 5
        return sent.id

    task_id = asyncio.run(run())
    config = Config(
        host="127.0.0.1",
        token="t" * 20,
        queues=["default"],
        management=None,
        events=False,
        allowed_hosts=["testserver"],
    )
    with TestClient(create_app(app, config)) as test:
        found = test.get("/tasks", params={"q": task_id}).text
        assert "SUCCESS" in found and ">5<" in found
        assert "SUCCESS" in test.get(f"/tasks/{task_id}").text
        assert "no result stored" in test.get("/tasks/unknown-id").text
