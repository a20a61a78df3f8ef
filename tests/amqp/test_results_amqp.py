"""Results on a real RabbitMQ (rpc://) and a real Redis (redis://), and against Celery's own
backend objects in both directions (no Celery worker needed: Celery's backend stores or reads
directly). Every queue and key a test makes is named after its unique token and removed.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis
from celery import Celery

from hare import Hare
from hare.core.message import Message
from hare.errors import BrokerError, ResultBackendError
from hare.results.backends.redis import task_key
from hare.results.handle import AsyncResult
from hare.results.state import FAILURE, SUCCESS, TaskResult
from hare.results.store import Results
from hare.transport.amqp.transport import AmqpTransport
from tests.results_fixtures import delete_keys_with, redis_url_or_skip

pytestmark = [
    pytest.mark.amqp,
    pytest.mark.anyio,
    # Celery 5.7's Redis backend calls SETEX, which redis-py 8 deprecates (hare calls SET EX).
    pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning"),
]


class Refused(Exception):
    """An exception class both sides can import (this module)."""


@pytest.fixture(scope="session")
def redis_url() -> str:
    return redis_url_or_skip()


@pytest.fixture
async def token(redis_url: str, unique: str) -> AsyncIterator[str]:
    """A unique token for ids; the Redis keys holding it are deleted afterwards."""
    yield unique
    await delete_keys_with(redis_url, unique)


def results_of(app: Hare) -> Results:
    assert app.results is not None
    return app.results


def hare_app(broker: str, backend: str) -> Hare:
    return Hare("tests", broker=broker, environ={}, connect_timeout=5, result_backend=backend)


def request(task_id: str, reply_to: str | None) -> Message:
    return Message(id=task_id, task="t.add", reply_to=reply_to, correlation_id=task_id)


# --- rpc:// on RabbitMQ ---------------------------------------------------------------------


@pytest.fixture
def celery_rpc(amqp_url: str) -> Iterator[Celery]:
    app = Celery("interop", broker=amqp_url, backend="rpc://", set_as_current=False)
    yield app
    app.close()


async def test_rpc_replies_in_random_order_reach_many_waiters(amqp_url: str, unique: str) -> None:
    client, worker = hare_app(amqp_url, "rpc://"), hare_app(amqp_url, "rpc://")
    ids = [f"{unique}-{i}" for i in range(30)]
    messages = [request(task_id, results_of(client).reply_to) for task_id in ids]
    for message in messages:
        await results_of(client).prepare(message)
    waiters = [asyncio.create_task(AsyncResult(i, client).aget(timeout=30)) for i in ids]
    order = list(range(30))
    random.Random(3).shuffle(order)
    for i in order:  # the worker: another app, another connection
        await results_of(worker).store(
            TaskResult(task_id=ids[i], state=SUCCESS, value=i), messages[i]
        )
    assert await asyncio.gather(*waiters) == list(range(30))
    failing = request(f"{unique}-f", results_of(client).reply_to)
    failure = TaskResult(task_id=failing.id, state=FAILURE, value=Refused("no"), traceback="tb")
    await results_of(worker).store(failure, failing)
    with pytest.raises(Refused, match="no"):
        await AsyncResult(failing.id, client).aget(timeout=30)
    for app in (client, worker):
        await results_of(app).aclose()
        await app.aclose()


async def test_rpc_reply_queue_is_the_one_celery_57_declares(
    amqp_url: str, celery_rpc: Celery
) -> None:
    app = hare_app(amqp_url, "rpc://")
    name = results_of(app).reply_to
    assert name is not None
    await results_of(app).prepare(request("x", name))
    # Celery's own declaration of the same queue must be equivalent (else 406 and an error).
    backend = celery_rpc.backend
    backend.__dict__["oid"] = name  # its cached per-thread name, made ours

    def declare() -> None:
        with celery_rpc.connection_for_write() as connection:
            backend.binding(connection.default_channel).declare()

    await asyncio.to_thread(declare)
    await results_of(app).aclose()  # cancels the consumer: the auto-delete queue goes
    await app.aclose()


async def test_rpc_a_celery_worker_reply_reaches_a_hare_client(
    amqp_url: str, celery_rpc: Celery, unique: str
) -> None:
    app = hare_app(amqp_url, "rpc://")
    task_id = f"{unique}-celery-side"
    await results_of(app).prepare(request(task_id, results_of(app).reply_to))
    celery_request = SimpleNamespace(
        reply_to=results_of(app).reply_to, correlation_id=task_id, children=[]
    )

    def store() -> None:
        celery_rpc.backend.store_result(task_id, {"sum": 5}, "SUCCESS", request=celery_request)

    await asyncio.to_thread(store)
    assert await AsyncResult(task_id, app).aget(timeout=30) == {"sum": 5}
    await results_of(app).aclose()
    await app.aclose()


async def test_rpc_a_hare_worker_reply_reaches_a_celery_client(
    amqp_url: str, celery_rpc: Celery, unique: str
) -> None:
    app = hare_app(amqp_url, "rpc://")
    reply_to = f"hare.test.{unique}.celery-client"
    task_id = f"{unique}-hare-side"
    declared, stored = threading.Event(), threading.Event()

    def celery_client() -> Any:
        # One thread throughout: Celery's backend (and its reply queue name) is per thread.
        backend = celery_rpc.backend
        backend.__dict__["oid"] = reply_to
        with celery_rpc.connection_for_write() as connection:
            backend.binding(connection.default_channel).declare()
        declared.set()
        stored.wait(30)
        try:
            return celery_rpc.AsyncResult(task_id).get(timeout=30, propagate=False)
        finally:
            backend.result_consumer.stop()  # its own connection, else left open

    client = asyncio.create_task(asyncio.to_thread(celery_client))
    await asyncio.to_thread(declared.wait, 30)
    failure = TaskResult(task_id=task_id, state=FAILURE, value=Refused("by hare"), traceback="tb")
    await results_of(app).store(failure, request(task_id, reply_to))
    stored.set()
    exc = await client
    assert isinstance(exc, Refused) and exc.args == ("by hare",)
    transport = AmqpTransport(amqp_url, connect_timeout=5)
    async with transport:
        await transport.delete_queue(reply_to)
    await app.aclose()


async def test_rpc_a_reply_to_a_vanished_queue_does_not_fail(amqp_url: str, unique: str) -> None:
    app = hare_app(amqp_url, "rpc://")
    gone = request(f"{unique}-gone", f"hare.test.{unique}.nobody-listens")
    await results_of(app).store(TaskResult(task_id=gone.id, state=SUCCESS, value=1), gone)
    transport = (await app.publisher()).transport
    with pytest.raises(BrokerError, match="NOT_FOUND"):  # the worker side declared nothing
        await transport.message_count(f"hare.test.{unique}.nobody-listens")
    await app.aclose()


# --- redis:// ------------------------------------------------------------------------------


@pytest.fixture
def celery_redis(redis_url: str) -> Iterator[Celery]:
    app = Celery("interop", backend=redis_url, set_as_current=False)
    yield app
    app.backend.client.connection_pool.disconnect()
    app.close()


async def test_redis_hare_stores_what_celery_reads(
    redis_url: str, token: str, celery_redis: Celery
) -> None:
    app = hare_app("memory://", redis_url)
    ok, bad = f"{token}-ok", f"{token}-bad"
    await results_of(app).store(TaskResult(task_id=ok, state=SUCCESS, value={"n": [1, 2]}), None)
    failure = TaskResult(task_id=bad, state=FAILURE, value=Refused("no"), traceback="tb")
    await results_of(app).store(failure, None)

    def read() -> tuple[Any, ...]:
        good, broken = celery_redis.AsyncResult(ok), celery_redis.AsyncResult(bad)
        return good.state, good.result, broken.state, broken.result, broken.traceback

    state, value, bad_state, exc, trace = await asyncio.to_thread(read)
    assert (state, value, bad_state, trace) == (SUCCESS, {"n": [1, 2]}, FAILURE, "tb")
    assert isinstance(exc, Refused) and exc.args == ("no",)
    client = aioredis.Redis.from_url(redis_url)
    ttl = await client.ttl(task_key(ok))
    await client.aclose()
    assert 86300 < ttl <= 86400  # SETEX with result_expires, as Celery sets it
    await results_of(app).aclose()


async def test_redis_celery_stores_what_hare_reads(
    redis_url: str, token: str, celery_redis: Celery
) -> None:
    app = hare_app("memory://", redis_url)
    ok, bad, custom = f"{token}-ok", f"{token}-bad", f"{token}-custom"

    def store() -> None:
        celery_redis.backend.store_result(ok, [3, 4], "SUCCESS")
        celery_redis.backend.mark_as_failure(bad, Refused("by celery"), traceback="tb")
        celery_redis.backend.store_result(custom, {"done": 1}, "PROGRESS")

    await asyncio.to_thread(store)
    assert await AsyncResult(ok, app).aget(timeout=10) == [3, 4]
    with pytest.raises(Refused, match="by celery"):
        await AsyncResult(bad, app).aget(timeout=10)
    progress = await AsyncResult(custom, app).arefresh()
    assert (progress.state, progress.value) == ("PROGRESS", {"done": 1})
    await results_of(app).aclose()


async def test_redis_waiters_on_both_sides_are_woken_by_the_other(
    redis_url: str, token: str, celery_redis: Celery
) -> None:
    app = hare_app("memory://", redis_url)
    to_hare, to_celery = f"{token}-to-hare", f"{token}-to-celery"
    hare_waiter = asyncio.create_task(AsyncResult(to_hare, app).aget(timeout=30))
    started = threading.Event()

    def celery_waits() -> Any:
        started.set()
        return celery_redis.AsyncResult(to_celery).get(timeout=30)

    celery_waiter = asyncio.create_task(asyncio.to_thread(celery_waits))
    await asyncio.to_thread(started.wait, 10)
    await asyncio.to_thread(celery_redis.backend.store_result, to_hare, "from celery", "SUCCESS")
    assert await hare_waiter == "from celery"
    await results_of(app).store(
        TaskResult(task_id=to_celery, state=SUCCESS, value="from hare"), None
    )
    assert await celery_waiter == "from hare"
    await results_of(app).aclose()


async def test_redis_many_waiters_and_a_success_is_never_overwritten(
    redis_url: str, token: str
) -> None:
    client, worker = hare_app("memory://", redis_url), hare_app("memory://", redis_url)
    ids = [f"{token}-{i}" for i in range(30)]
    waiters = [asyncio.create_task(results_of(client).await_ready(i, 30)) for i in ids]
    order = list(range(30))
    random.Random(5).shuffle(order)
    for i in order:
        await results_of(worker).store(TaskResult(task_id=ids[i], state=SUCCESS, value=i), None)
    assert [r.value for r in await asyncio.gather(*waiters)] == list(range(30))
    late = TaskResult(task_id=ids[0], state=FAILURE, value=Refused("late duplicate"))
    await results_of(worker).store(late, None)
    found = await results_of(client).alookup(ids[0])
    assert found is not None and (found.state, found.value) == (SUCCESS, 0)
    await results_of(client).aforget(ids[0])
    assert await results_of(client).alookup(ids[0]) is None
    for app in (client, worker):
        await results_of(app).aclose()


async def test_redis_a_waiter_reads_again_when_a_publish_was_missed(
    redis_url: str, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hare.results.backends.redis.RECHECK_INTERVAL", 0.2)
    app = hare_app("memory://", redis_url)
    task_id = f"{token}-quiet"
    waiter = asyncio.create_task(results_of(app).await_ready(task_id, 30))
    await asyncio.sleep(0.3)  # subscribed and waiting
    body = b'{"status": "SUCCESS", "result": 9, "traceback": null, "children": [], ' + (
        b'"date_done": "2026-01-01T00:00:00+00:00", "task_id": "' + task_id.encode() + b'"}'
    )
    client = aioredis.Redis.from_url(redis_url)
    await client.set(task_key(task_id), body, ex=60)  # as if its PUBLISH was lost
    await client.aclose()
    assert (await waiter).value == 9
    await results_of(app).aclose()


async def test_redis_chord_completes_exactly_once_across_connections(
    redis_url: str, token: str
) -> None:
    one, two = hare_app("memory://", redis_url), hare_app("memory://", redis_url)
    group, size = f"{token}-group", 12

    def part(index: int) -> TaskResult:
        return TaskResult(
            task_id=f"{token}-p{index}", state=SUCCESS, value=index, group_index=index
        )

    calls = [(one if i % 2 else two, part(i)) for i in range(size)]
    calls += [(one, part(3)), (two, part(7))]  # redeliveries: counted once
    random.Random(11).shuffle(calls)
    outcomes = await asyncio.gather(
        *(results_of(app).chord_part_done(group, size, p) for app, p in calls)
    )
    completed = [o for o in outcomes if o is not None]
    assert len(completed) == 1
    assert [(p.value, p.group_index) for p in completed[0]] == [(i, i) for i in range(size)]
    winner = next(app for (app, _), o in zip(calls, outcomes, strict=True) if o is not None)
    await results_of(winner).chord_complete(group)
    assert await results_of(one).chord_part_done(group, size, part(0)) is None  # done for good
    for app in (one, two):
        await results_of(app).aclose()


async def test_a_part_added_to_a_running_chord_is_waited_for(redis_url: str, token: str) -> None:
    # (the memory store too: the same rule on the in-process backend)
    for backend in (redis_url, "memory://"):
        app = hare_app("memory://", backend)
        results = results_of(app)
        group = f"{token}-added-{backend[:5]}"

        def part(index: int) -> TaskResult:
            return TaskResult(task_id=f"{token}-a{index}", state=SUCCESS, value=index)

        await results.set_chord_size(group, 2)
        assert await results.chord_part_done(group, 2, part(0)) is None
        await results.aadd_to_chord(group)  # part 0 grew the header (Celery's add_to_chord)
        assert await results.chord_part_done(group, 2, part(1)) is None  # 2 of 3
        done = await results.chord_part_done(group, 2, part(2))
        assert done is not None and sorted(p.value for p in done) == [0, 1, 2]
        await results.chord_complete(group)
        await results.aclose()


async def test_redis_chord_keys_are_celerys(
    redis_url: str, token: str, celery_redis: Celery
) -> None:
    app = hare_app("memory://", redis_url)
    group = f"{token}-g"
    await asyncio.to_thread(celery_redis.backend.set_chord_size, group, 2)  # Celery applies it
    failed = TaskResult(task_id=f"{token}-a", state=FAILURE, value=Refused("x"), group_index=0)
    assert await results_of(app).chord_part_done(group, None, failed) is None
    client = aioredis.Redis.from_url(redis_url)
    entries = await client.zrange(f"celery-taskset-meta-{group}.j", 0, -1)
    await client.aclose()
    with pytest.raises(Exception, match="Dependency .*-a raised Refused"):
        celery_redis.backend._unpack_chord_result(entries[0], celery_redis.backend.decode)
    ok = TaskResult(task_id=f"{token}-b", state=SUCCESS, value=2, extra={"group_index": 1})
    done = await results_of(app).chord_part_done(group, None, ok)
    assert done is not None and [p.state for p in done] == [FAILURE, SUCCESS]
    # A failed chord keeps its parts' results, as Celery does (its size goes).
    await results_of(app).chord_complete(group, failed=True)
    client = aioredis.Redis.from_url(redis_url)
    key = f"celery-taskset-meta-{group}"
    assert await client.zcard(key + ".j") == 2 and not await client.exists(key + ".s")
    await client.aclose()
    await results_of(app).aclose()


async def test_redis_a_part_that_finishes_before_celery_sets_the_size_is_counted(
    redis_url: str, token: str, celery_redis: Celery
) -> None:
    """Celery's client sets a chord's size just before it sends the last header part (a
    generator header, nested groups): an earlier part may finish first. It is counted, and
    the part that counts last completes the chord with both."""
    app = hare_app("memory://", redis_url)
    group = f"{token}-early"
    early = TaskResult(task_id=f"{token}-a", state=SUCCESS, value=1, group_index=0)
    assert await results_of(app).chord_part_done(group, None, early) is None
    await asyncio.to_thread(celery_redis.backend.set_chord_size, group, 2)
    last = TaskResult(task_id=f"{token}-b", state=SUCCESS, value=2, group_index=1)
    done = await results_of(app).chord_part_done(group, None, last)
    assert done is not None and [(p.task_id, p.value) for p in done] == [
        (early.task_id, 1),
        (last.task_id, 2),
    ]
    await results_of(app).chord_complete(group)
    await results_of(app).aclose()


async def test_redis_a_chord_header_is_saved_and_joined_as_celery_does(
    redis_url: str, token: str, celery_redis: Celery
) -> None:
    """A header with a chain ending in a group (Celery's test_nested_chord_group_chain_group_
    tail): Celery's client saves it (apply_chord), and hare's part that completes the chord
    gives the body that group's values as one list; a header hare saves, Celery restores."""
    from celery.result import AsyncResult as CeleryResult
    from celery.result import GroupResult

    from hare.canvas.continuation import Plan
    from hare.results.state import GroupRef

    app = hare_app("memory://", redis_url)
    results = results_of(app)
    group, inner = f"{token}-g", f"{token}-inner"
    a, b, c = (f"{token}-{name}" for name in "abc")
    theirs = GroupResult(
        group,
        [CeleryResult(a), GroupResult(inner, [CeleryResult(b), CeleryResult(c)])],
        app=celery_redis,
    )
    await asyncio.to_thread(celery_redis.backend.apply_chord, (group, theirs.results), None)
    await asyncio.to_thread(celery_redis.backend.set_chord_size, group, 3)
    parts = [
        TaskResult(task_id=a, state=SUCCESS, value=1, group_index=0),
        TaskResult(task_id=b, state=SUCCESS, value=2, group_index=0),
        TaskResult(task_id=c, state=SUCCESS, value=3, group_index=1),
    ]
    outcomes = []
    for part in parts:
        await results.store(part, None)
        outcomes.append(await results.chord_part_done(group, None, part))
    done = outcomes[-1]
    assert outcomes[:2] == [None, None] and done is not None
    assert [(p.task_id, p.value) for p in done] == [(a, 1), (inner, [2, 3])]
    await results.chord_complete(group)

    ours = GroupRef(f"{token}-h", (a, GroupRef(inner, (b, c))))
    await results.record_chords(Plan(chord_headers=(ours,)))
    restored = await asyncio.to_thread(GroupResult.restore, ours.id, app=celery_redis)
    assert restored == GroupResult(ours.id, theirs.results, app=celery_redis)
    await results.aclose()


async def test_an_unreachable_redis_is_a_named_error() -> None:
    app = hare_app("memory://", "redis://:secret@127.0.0.1:1/0")
    with pytest.raises(ResultBackendError, match=r"127\.0\.0\.1:1") as raised:
        await results_of(app).alookup("any")
    assert "secret" not in str(raised.value)
    await results_of(app).aclose()
