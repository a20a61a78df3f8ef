"""Results on the memory transport with a manual clock: memory://, rpc:// logic, AsyncResult.

rpc runs for real here (reply queue, consumer, correlation) on the memory broker; only what
needs RabbitMQ or Redis themselves is in tests/amqp/test_results_amqp.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import uuid
from dataclasses import replace
from typing import Any

import pytest

from hare import Hare
from hare.canvas.continuation import Plan
from hare.core.envelope import Envelope, Properties
from hare.core.message import Message
from hare.errors import (
    BrokerError,
    ConfigurationError,
    MalformedResult,
    NotSupportedError,
    RemoteError,
    ResultsDisabled,
    ResultTimeout,
)
from hare.results.backends.replies import ReplyRouter
from hare.results.backends.rpc import RpcBackend, reply_queue
from hare.results.handle import AsyncResult
from hare.results.state import (
    FAILURE,
    PENDING,
    RETRY,
    REVOKED,
    SUCCESS,
    GroupRef,
    TaskResult,
)
from hare.results.store import Results, backend_kind
from hare.testing import ManualClock, memory_app, until
from hare.transport.memory.transport import MemoryTransport

pytestmark = pytest.mark.anyio


def results_app(backend: str, clock: ManualClock | None = None, **settings: Any) -> Hare:
    app = memory_app(clock or ManualClock(), result_backend=backend, **settings)
    # What Hare must do (see the report): give Results the app's clock.
    app.results = Results(app.settings, app.connections, app.clock)
    return app


def results_of(app: Hare) -> Results:
    assert app.results is not None
    return app.results


def request(task_id: str, reply_to: str | None, **fields: Any) -> Message:
    return Message(id=task_id, task="t.add", reply_to=reply_to, correlation_id=task_id, **fields)


def new_id() -> str:
    return str(uuid.uuid4())


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [("rpc://", "rpc"), ("rpc", "rpc"), ("redis://h:6379/2", "redis"), ("memory://", "memory")],
)
def test_backend_urls(url: str, kind: str) -> None:
    assert backend_kind(url) == kind


@pytest.mark.parametrize("url", ["db+sqlite:///r.db", "cache+memory://", "amqp://", "nonsense"])
def test_other_backends_are_refused_by_name(url: str) -> None:
    with pytest.raises(NotSupportedError, match="rpc://, redis://host:port/db, memory://"):
        backend_kind(url)


def test_an_app_with_an_unknown_backend_fails_at_creation() -> None:
    with pytest.raises(NotSupportedError, match="result_backend 'mongodb://"):
        memory_app(result_backend="mongodb://localhost/")


def test_reply_to_is_a_uuid_per_app_and_process_for_rpc_only() -> None:
    rpc_a, rpc_b = results_app("rpc://"), results_app("rpc://")
    a = results_of(rpc_a).reply_to
    assert a is not None and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-3[0-9a-f]{3}-.{4}-.{12}", a)
    assert results_of(rpc_a).reply_to == a
    assert results_of(rpc_b).reply_to != a
    assert results_of(results_app("memory://")).reply_to is None


def test_the_reply_queue_is_declared_as_celery_57_declares_it() -> None:
    queue = reply_queue("q1", 86400.0)
    assert (queue.durable, queue.auto_delete, queue.exclusive) == (True, True, False)
    assert dict(queue.arguments) == {"x-expires": 86400000}
    assert dict(reply_queue("q1", 60.5, expiring=False).arguments) == {}


@pytest.mark.parametrize(
    "use",
    [
        lambda h: h.state,
        lambda h: h.status,
        lambda h: h.result,
        lambda h: h.traceback,
        lambda h: h.ready(),
        lambda h: h.successful(),
        lambda h: h.failed(),
        lambda h: h.get(timeout=1),
        lambda h: h.forget(),
    ],
)
def test_every_result_method_says_results_are_off_and_how_to_turn_them_on(use: Any) -> None:
    handle = AsyncResult("some-id", memory_app())
    with pytest.raises(ResultsDisabled, match="result_backend='rpc://'") as raised:
        use(handle)
    assert isinstance(raised.value, ConfigurationError)


async def test_awaiting_without_results_says_so_too() -> None:
    with pytest.raises(ResultsDisabled, match="aget"):
        await AsyncResult("some-id", memory_app())


# --- memory:// --------------------------------------------------------------------------------


async def test_a_stored_success_reads_back_through_a_handle() -> None:
    app = results_app("memory://")
    task_id = new_id()
    handle = AsyncResult(task_id, app)
    assert (await handle.arefresh()).state == PENDING
    await results_of(app).store(TaskResult(task_id=task_id, state=SUCCESS, value=[1, 2]), None)
    assert await handle == [1, 2]
    assert handle.ready() and handle.successful() and not handle.failed()
    assert (handle.state, handle.result, handle.date_done is not None) == (SUCCESS, [1, 2], True)


async def test_a_waiter_wakes_when_the_result_is_stored() -> None:
    app, clock = results_app("memory://"), ManualClock()
    task_id = new_id()
    waiter = asyncio.create_task(AsyncResult(task_id, app).aget(timeout=30))
    await clock.yield_control()
    started = TaskResult(task_id=task_id, state="STARTED", value={"pid": 1})
    await results_of(app).store(started, None)
    await clock.yield_control()
    assert not waiter.done()  # not ready yet
    await results_of(app).store(TaskResult(task_id=task_id, state=SUCCESS, value=5), None)
    assert await waiter == 5


async def test_waiting_times_out_on_the_clock_with_a_named_error() -> None:
    clock = ManualClock()
    app = results_app("memory://", clock)
    waiter = asyncio.create_task(results_of(app).await_ready("late", timeout=5))
    await clock.advance_by(4.9)
    assert not waiter.done()
    await clock.advance_by(0.2)
    with pytest.raises(ResultTimeout, match="late within 5s") as raised:
        await waiter
    assert isinstance(raised.value, TimeoutError)


async def test_a_failure_raises_the_task_exception_unless_told_not_to() -> None:
    app = results_app("memory://")
    task_id = new_id()
    failure = TaskResult(
        task_id=task_id, state=FAILURE, value=KeyError("gone"), traceback="Traceback ..."
    )
    await results_of(app).store(failure, None)
    handle = AsyncResult(task_id, app)
    with pytest.raises(KeyError, match="gone"):
        await handle.aget()
    exc = await handle.aget(propagate=False)
    assert isinstance(exc, KeyError) and exc.args == ("gone",)
    assert handle.failed() and handle.traceback == "Traceback ..."


async def test_revoked_propagates_as_celery_does() -> None:
    app = results_app("memory://")
    revoked = TaskResult(
        task_id="r1", state=REVOKED, value=RemoteError("TaskRevokedError", "x.y", ["expired"])
    )
    await results_of(app).store(revoked, None)
    with pytest.raises(RemoteError, match="TaskRevokedError: expired"):
        await AsyncResult("r1", app)


async def test_a_success_is_never_overwritten() -> None:
    app = results_app("memory://")
    results = results_of(app)
    await results.store(TaskResult(task_id="s1", state=SUCCESS, value=1), None)
    await results.store(TaskResult(task_id="s1", state=RETRY, value=ValueError()), None)
    await results.store(TaskResult(task_id="s1", state=FAILURE, value=ValueError()), None)
    found = await results.alookup("s1")
    assert found is not None and (found.state, found.value) == (SUCCESS, 1)


async def test_custom_states_forget_and_ignore_result() -> None:
    app = results_app("memory://")
    results = results_of(app)
    await results.astore_state("c1", "PROGRESS", {"done": 3, "of": 10})
    handle = AsyncResult("c1", app)
    assert (handle.state, handle.info, handle.ready()) == ("PROGRESS", {"done": 3, "of": 10}, False)
    await handle.aforget()
    assert handle.state == PENDING and handle.result is None
    ignored = request("c2", None, ignore_result=True)
    await results.store(TaskResult(task_id="c2", state=SUCCESS, value=1), ignored)
    assert await results.alookup("c2") is None
    with pytest.raises(ValueError, match="non-empty string"):
        await results.astore_state("c1", "")


async def test_a_value_json_cannot_carry_is_stored_as_an_encode_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = results_app("memory://")
    with caplog.at_level(logging.WARNING, "hare.results"):
        await results_of(app).store(TaskResult(task_id="u1", state=SUCCESS, value=object()), None)
    found = await results_of(app).alookup("u1")
    assert found is not None and found.state == FAILURE
    assert "EncodeError" in repr(type(found.value)) or "EncodeError" in str(found.value)
    assert "storing a FAILURE instead" in caplog.text


async def test_chord_parts_complete_exactly_once_in_group_order() -> None:
    app = results_app("memory://")
    results = results_of(app)
    group = new_id()

    def part(index: int) -> TaskResult:
        return TaskResult(task_id=f"p{index}", state=SUCCESS, value=index * 10, group_index=index)

    assert await results.chord_part_done(group, 3, part(2)) is None
    assert await results.chord_part_done(group, 3, part(2)) is None  # a redelivery counts once
    assert await results.chord_part_done(group, 3, part(0)) is None
    done = await results.chord_part_done(group, 3, part(1))
    assert done is not None
    assert [(p.task_id, p.value, p.group_index) for p in done] == [
        ("p0", 0, 0),
        ("p1", 10, 1),
        ("p2", 20, 2),
    ]
    assert await results.chord_part_done(group, 3, part(1)) is None  # claimed already
    await results.chord_complete(group)
    assert await results.chord_part_done(group, 3, part(0)) is None  # done for good


async def test_a_chord_size_recorded_when_applied_serves_parts_that_carry_none() -> None:
    app = results_app("memory://")
    results = results_of(app)
    group = new_id()
    second = TaskResult(task_id="b", state=FAILURE, value=ValueError("x"), extra={"group_index": 1})
    # A part may finish before Celery's client sets the size (it does so just before it
    # sends the last part): it is counted, and the part that counts last completes the chord.
    assert await results.chord_part_done(group, None, second) is None
    await results.set_chord_size(group, 2)
    first = TaskResult(task_id="a", state=SUCCESS, value=1, group_index=0)
    done = await results.chord_part_done(group, None, first)
    assert done is not None and [(p.task_id, p.state) for p in done] == [
        ("a", SUCCESS),
        ("b", FAILURE),
    ]
    assert isinstance(done[1].value, ValueError)
    await results.chord_complete(group)
    await results.set_chord_size(group, 2)  # applied again: a new run, counted from zero
    assert await results.chord_part_done(group, None, first) is None
    assert await results.chord_part_done(group, None, second) is not None
    with pytest.raises(ValueError, match="at least one part"):
        await results.set_chord_size(group, 0)


async def test_a_saved_chord_header_gives_the_body_its_results_in_their_shape() -> None:
    """A header with a chain ending in a group: the body gets that group's values as one
    list (Celery's Redis apply_chord saves such a header and joins it when complete)."""
    app = results_app("memory://")
    results = results_of(app)
    group = new_id()
    header = GroupRef(group, ("a", GroupRef("inner", ("b", "c"))))
    await results.record_chords(Plan(chord_headers=(header,), chord_sizes=((group, 3),)))
    parts = [
        TaskResult(task_id="a", state=SUCCESS, value=1, group_index=0),
        TaskResult(task_id="b", state=SUCCESS, value=2, group_index=0),
        TaskResult(task_id="c", state=FAILURE, value=ValueError("c"), group_index=1),
    ]
    for part in parts:  # a worker stores a part's result before it counts it
        await results.store(part, None)
    assert await results.chord_part_done(group, None, parts[0]) is None
    assert await results.chord_part_done(group, None, parts[1]) is None
    done = await results.chord_part_done(group, None, parts[2])
    assert done is not None
    assert [(p.task_id, p.state, p.group_index) for p in done] == [
        ("a", SUCCESS, 0),
        ("c", FAILURE, 1),  # the group's failed member
    ]
    await results.chord_complete(group)
    # All succeeded: the group's values, as a list.
    await results.record_chords(Plan(chord_headers=(header,), chord_sizes=((group, 3),)))
    await results.store(replace(parts[2], state=SUCCESS, value=3), None)
    for part in parts:
        done = await results.chord_part_done(group, None, part)
    assert done is not None and [p.value for p in done] == [1, [2, 3]]


def test_sync_calls_run_on_the_home_loop() -> None:
    app = results_app("memory://")
    results = results_of(app)
    try:
        results.store_state("y1", SUCCESS, None)
        results.store_state("y2", "PROGRESS", {"n": 1})
        handle = AsyncResult("y1", app)
        assert (handle.get(timeout=5), handle.state) == (None, SUCCESS)
        assert AsyncResult("y2", app).state == "PROGRESS"
        AsyncResult("y2", app).forget()
        assert AsyncResult("y2", app).state == PENDING
        with pytest.raises(ResultTimeout):
            AsyncResult("never", app).get(timeout=0)
    finally:
        results.close()
        app.close()


# --- rpc:// on the memory broker -----------------------------------------------------------


async def sent(app: Hare, task_id: str) -> Message:
    """What a client does before publishing a task: get ready for its reply."""
    message = request(task_id, results_of(app).reply_to)
    await results_of(app).prepare(message)
    return message


async def test_rpc_replies_reach_many_waiters_in_any_order() -> None:
    clock = ManualClock()
    app = results_app("rpc://", clock)
    results = results_of(app)
    ids = [new_id() for _ in range(20)]
    messages = [await sent(app, task_id) for task_id in ids]
    waiters = {task_id: asyncio.create_task(results.await_ready(task_id, 30)) for task_id in ids}
    await clock.yield_control()
    order = list(range(20))
    random.Random(7).shuffle(order)
    for i in order:  # the "worker": same app, its own publisher
        result = TaskResult(task_id=ids[i], state=SUCCESS, value=i)
        await results.store(result, messages[i])
    got = {task_id: (await waiter).value for task_id, waiter in waiters.items()}
    assert got == {task_id: i for i, task_id in enumerate(ids)}
    await results.aclose()
    await app.aclose()


async def test_rpc_keeps_replies_nobody_waits_for_yet_and_the_final_state_wins() -> None:
    clock = ManualClock()
    app = results_app("rpc://", clock)
    results = results_of(app)
    message = await sent(app, "k1")
    await results.store(TaskResult(task_id="k1", state="STARTED", value={"pid": 7}), message)
    await until(lambda: results._router.unclaimed == 1, clock)
    assert (await AsyncResult("k1", app).arefresh()).state == "STARTED"
    await results.store(TaskResult(task_id="k1", state=SUCCESS, value="ok"), message)
    await results.store(TaskResult(task_id="k1", state=RETRY, value=None), message)  # late
    handle = AsyncResult("k1", app)
    assert await handle.aget(timeout=10) == "ok"
    assert await AsyncResult("k1", app).aget(timeout=10) == "ok"  # a second handle too
    await results.aclose()
    await app.aclose()


async def test_rpc_worker_side_never_declares_and_never_fails_on_a_missing_queue() -> None:
    app = results_app("rpc://")
    results = results_of(app)
    gone = request("w1", "no-such-reply-queue")
    await results.store(TaskResult(task_id="w1", state=SUCCESS, value=1), gone)  # no error
    transport = (await app.publisher()).transport
    with pytest.raises(BrokerError, match="no-such-reply-queue"):
        await transport.message_count("no-such-reply-queue")  # nothing declared it
    await results.store(TaskResult(task_id="w2", state=SUCCESS), request("w2", None))  # no reply
    quiet = request("w3", "no-such-reply-queue", ignore_result=True)
    await results.store(TaskResult(task_id="w3", state=SUCCESS), quiet)
    with pytest.raises(ConfigurationError, match="request"):
        await results.astore_state("w4", "PROGRESS", {})
    await app.aclose()


async def test_rpc_reply_properties_are_celerys() -> None:
    app = results_app("rpc://")
    transport = (await app.publisher()).transport
    await transport.declare_queue(reply_queue("probe", 60, expiring=False))
    message = request("p1", "probe")
    await results_of(app).store(TaskResult(task_id="p1", state=SUCCESS, value=5), message)
    delivery = await transport.get("probe")
    assert delivery is not None
    props = delivery.properties
    assert (props.correlation_id, props.delivery_mode, props.content_type) == (
        "p1",
        1,
        "application/json",
    )
    assert (delivery.exchange, delivery.routing_key) == ("", "probe")
    assert delivery.body.startswith(b'{"status": "SUCCESS", "result": 5, "traceback": null')
    await transport.delete_queue("probe")
    await app.aclose()


async def publish_reply(app: Hare, body: bytes, task_id: str, content_type: str) -> None:
    reply_to = results_of(app).reply_to
    assert reply_to is not None
    properties = Properties(content_type=content_type, correlation_id=task_id, delivery_mode=1)
    envelope = Envelope(exchange="", routing_key=reply_to, body=body, properties=properties)
    await (await app.publisher()).transport.publish(envelope)


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"garbage", "application/json", "not JSON"),
        (b"\x80\x04K\x01.", "application/x-python-serialize", "JSON results only"),
    ],
)
async def test_an_unreadable_reply_fails_its_waiter_with_a_named_error(
    body: bytes, content_type: str, error: str
) -> None:
    clock = ManualClock()
    app = results_app("rpc://", clock)
    await sent(app, "bad1")
    waiter = asyncio.create_task(results_of(app).await_ready("bad1", 30))
    await clock.yield_control()
    await publish_reply(app, body, "bad1", content_type)
    with pytest.raises(MalformedResult, match=error):
        await waiter
    await results_of(app).aclose()
    await app.aclose()


async def test_rpc_has_no_chords_as_in_celery() -> None:
    app = results_app("rpc://")
    with pytest.raises(NotSupportedError, match="use a redis:// result backend"):
        await results_of(app).chord_part_done("g", 2, TaskResult(task_id="x", state=SUCCESS))
    with pytest.raises(NotSupportedError, match="chords with result_backend='rpc://'"):
        await results_of(app).set_chord_size("g", 2)
    await results_of(app).aclose()


async def test_the_reply_consumer_comes_back_after_a_lost_connection() -> None:
    clock = ManualClock()
    app = results_app("rpc://", clock)
    results = results_of(app)
    message = await sent(app, "r1")
    backend = results.backend()
    assert isinstance(backend, RpcBackend)
    consumer_transport = backend._transport
    assert isinstance(consumer_transport, MemoryTransport)
    await consumer_transport.sever()
    await until(lambda: backend._consumer is not None and consumer_transport.is_connected, clock)
    await results.store(TaskResult(task_id="r1", state=SUCCESS, value="back"), message)
    assert (await results.await_ready("r1", 30)).value == "back"
    await results.aclose()
    await app.aclose()


def test_a_handle_on_another_loop_gets_replies_the_consuming_loop_received() -> None:
    app = Hare("tests", broker="memory://", environ={}, result_backend="rpc://")  # real clock
    results = results_of(app)
    got: list[Any] = []

    async def client() -> None:
        message = await sent(app, "x1")  # this loop consumes
        await results.store(TaskResult(task_id="x1", state=SUCCESS, value="across"), message)
        # The sync get() runs on the home portal's loop, which does not consume.
        got.append(await asyncio.to_thread(AsyncResult("x1", app).get, 30))
        assert results._router.consumer is results.backend()
        await results.aclose()
        await app.aclose()

    try:
        asyncio.run(client())
    finally:
        results.close()
        app.close()
    assert got == ["across"]


def test_a_new_loop_takes_over_consuming_when_the_old_one_closed() -> None:
    app = results_app("rpc://")
    results = results_of(app)
    owners: list[object] = []

    async def one_run(task_id: str) -> Any:
        message = await sent(app, task_id)
        owners.append(results._router.consumer)
        await results.store(TaskResult(task_id=task_id, state=SUCCESS, value=task_id), message)
        value = (await results.await_ready(task_id, 30)).value
        await app.aclose()  # the loop ends without closing results: its consumer just dies
        return value

    assert asyncio.run(one_run("first")) == "first"
    assert asyncio.run(one_run("second")) == "second"
    assert owners[0] is not owners[1] and all(isinstance(o, RpcBackend) for o in owners)


# --- the reply router -------------------------------------------------------------------------


async def test_unclaimed_replies_are_bounded_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = ReplyRouter(limit=3)
    with caplog.at_level(logging.WARNING, "hare.results"):
        for i in range(5):
            router.deliver(f"t{i}", TaskResult(task_id=f"t{i}", state=SUCCESS, value=i))
    assert (router.unclaimed, router.dropped) == (3, 2)
    assert router.lookup("t0") is None and router.lookup("t1") is None
    found = router.lookup("t4")
    assert found is not None and found.value == 4
    assert "dropped the reply for task t0" in caplog.text


async def test_a_waiter_registered_first_is_woken_from_another_thread() -> None:
    router = ReplyRouter()
    future: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
    assert router.register("a", future) is None
    thread = threading.Thread(
        target=router.deliver, args=("a", TaskResult(task_id="a", state=SUCCESS, value=1))
    )
    thread.start()
    assert (await asyncio.wait_for(future, 10)).value == 1
    thread.join()
    assert router.unclaimed == 0
