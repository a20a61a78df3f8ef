"""A task's context and signals as the worker runs it; Ignore, retry overrides, terminate,
`after_signal`, STARTED, and the signals of revoked, expired and terminated tasks."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hare import context, signals
from hare.errors import Ignore, Retry, TaskRevoked
from hare.results.handle import AsyncResult
from hare.testing import Ledger, ManualClock, drain, memory_app, running_worker, until
from tests.runtime import STAMP_HEADERS, stamped_signature

pytestmark = pytest.mark.anyio


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every task signal sent while the test runs, in order."""
    events: list[tuple[str, dict[str, Any]]] = []
    watched = [
        signals.task_received,
        signals.task_revoked,
        signals.task_prerun,
        signals.task_success,
        signals.task_failure,
        signals.task_retry,
        signals.task_postrun,
        signals.worker_ready,
        signals.worker_shutdown,
    ]
    receivers = []
    for signal in watched:

        def receiver(signal: signals.Signal, sender: Any = None, **named: Any) -> None:
            events.append((signal.name, {"sender": sender, **named}))

        signal.connect(receiver)
        receivers.append((signal, receiver))
    yield events
    for signal, receiver in receivers:
        assert signal.disconnect(receiver)


async def test_signals_go_out_in_celerys_order_around_a_task(heard: list[Any]) -> None:
    app = memory_app(default_queue="q")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        ledger.record("add", threading.get_ident())
        return x + y

    prerun_threads: list[int] = []
    finished = threading.Event()  # postrun is sent from the task's thread
    signals.task_prerun.connect(
        lambda sender=None, **_: prerun_threads.append(threading.get_ident()), dispatch_uid="t"
    )
    signals.task_postrun.connect(lambda sender=None, **_: finished.set(), dispatch_uid="t")
    try:
        async with running_worker(app) as worker:
            sent = await add.adelay(2, 3)
            await ledger.wait_for(1)
            assert await asyncio.to_thread(finished.wait, 10)
    finally:
        signals.task_prerun.disconnect(dispatch_uid="t")
        signals.task_postrun.disconnect(dispatch_uid="t")
    names = [name for name, _ in heard]
    assert names == [
        "worker_ready",
        "task_received",
        "task_prerun",
        "task_success",
        "task_postrun",
        "worker_shutdown",
    ]
    received, prerun, success, postrun = (named for _, named in heard[1:5])
    assert received["sender"] == worker.nodename and received["request"].id == sent.id
    assert received["request"].name == "t.add" and received["request"].args == [2, 3]
    assert prerun["task_id"] == sent.id and prerun["sender"] is add and prerun["args"] == [2, 3]
    assert success["result"] == 5
    assert postrun["state"] == "SUCCESS" and postrun["retval"] == 5
    # prerun ran in the thread that ran the task (thread-local set-up is seen by the task)
    assert prerun_threads == [ledger.runs[0][1]]


async def test_retry_then_final_failure_signals(heard: list[Any]) -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="q")

    @app.task(
        name="t.flaky",
        max_retries=1,
        autoretry_for=(ValueError,),
        retry_jitter=False,
        default_retry_delay=0,
    )
    async def flaky() -> None:
        raise ValueError("nope")

    async with running_worker(app):
        await flaky.adelay()
        await until(lambda: sum(1 for n, _ in heard if n == "task_postrun") >= 1, clock)
        clock.advance(1)
        await until(lambda: sum(1 for n, _ in heard if n == "task_postrun") >= 2, clock)
    names = [name for name, _ in heard if name.startswith("task_")]
    assert names == [
        "task_received",
        "task_prerun",
        "task_retry",
        "task_postrun",
        "task_received",
        "task_prerun",
        "task_failure",
        "task_postrun",
    ]
    failure = next(named for name, named in heard if name == "task_failure")
    assert isinstance(failure["exception"], ValueError)
    assert "ValueError: nope" in failure["traceback"]
    retry = next(named for name, named in heard if name == "task_retry")
    assert retry["request"].retries == 0 and isinstance(retry["reason"], ValueError)


async def test_the_context_describes_the_running_message() -> None:
    app = memory_app(default_queue="q")
    seen: list[context.TaskContext | None] = []

    @app.task(name="t.sync")
    def sync_task() -> None:
        seen.append(context.current())

    @app.task(name="t.async")
    async def async_task() -> None:
        seen.append(context.current())

    async with running_worker(app) as worker:
        a = await sync_task.adelay()
        b = await async_task.adelay()
        await until(lambda: len(seen) == 2, app.clock)  # type: ignore[arg-type]
    assert context.current() is None
    by_id = {ctx.id: ctx for ctx in seen if ctx is not None}
    assert set(by_id) == {a.id, b.id}
    for ctx in by_id.values():
        assert ctx.queue == "q" and ctx.hostname == worker.nodename and not ctx.is_eager
        assert ctx.delivery_info["routing_key"] == "q" and ctx.retries == 0


async def test_ignore_acks_and_leaves_no_dead_letter() -> None:
    app = memory_app(default_queue="q")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.ignored")
    async def ignored() -> None:
        ledger.record("ran")
        raise Ignore()

    async with running_worker(app) as worker:
        await ignored.adelay()
        await ledger.wait_for(1)
        await until(lambda: worker.in_flight == 0, app.clock)  # type: ignore[arg-type]
        transport = (await app.publisher()).transport
        assert await transport.message_count("q") == 0
        assert await drain(transport, "q.dead") == []


async def test_retry_can_change_the_next_attempts_arguments() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="q")
    calls: list[tuple[int, str]] = []

    @app.task(name="t.step")
    async def step(n: int, label: str = "first") -> None:
        calls.append((n, label))
        if n == 0:
            raise Retry(countdown=0, args=(1,), kwargs={"label": "second"})

    async with running_worker(app):
        await step.adelay(0)
        await until(lambda: len(calls) == 2, clock)
    assert calls == [(0, "first"), (1, "second")]


async def test_terminate_stops_a_running_async_task_with_task_revoked(heard: list[Any]) -> None:
    app = memory_app(default_queue="q", result_backend="memory://")
    started = asyncio.Event()

    @app.task(name="t.forever")
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async with running_worker(app) as worker:
        sent = await forever.adelay()
        await asyncio.wait_for(started.wait(), 10)
        assert worker._processor_of().terminate(sent.id)
        await until(lambda: worker.in_flight == 0, app.clock)  # type: ignore[arg-type]
        transport = (await app.publisher()).transport
        dead = await drain(transport, "q.dead")
        stored = await AsyncResult(sent.id, app).arefresh()
        remaining = await transport.message_count("q")
    # Celery's way: no task_failure, the result is REVOKED, the message acked (not dead)
    names = [name for name, _ in heard if name.startswith("task_")]
    assert names == ["task_received", "task_prerun", "task_revoked", "task_postrun"]
    revoked = next(named for name, named in heard if name == "task_revoked")
    assert revoked["request"].id == sent.id and revoked["sender"] is forever
    assert revoked["terminated"] is True and revoked["signum"] == "SIGTERM"
    assert revoked["expired"] is False
    assert stored.state == "REVOKED" and isinstance(stored.value, TaskRevoked)
    assert dead == [] and remaining == 0


async def test_after_signal_runs_between_the_outcome_signal_and_postrun(
    heard: list[Any],
) -> None:
    app = memory_app(default_queue="q")
    seen: list[tuple[str, Any, str | None]] = []

    @app.task(name="t.sync_ok")
    def sync_ok() -> int:
        return 7

    @app.task(name="t.async_fails")
    async def async_fails() -> None:
        raise KeyError("k")

    def after_sync(state: str, retval: Any) -> None:
        heard.append(("after", {}))
        ctx = context.current()
        seen.append((state, retval, ctx.id if ctx else None))

    async def after_async(state: str, retval: Any) -> None:
        await asyncio.sleep(0)
        after_sync(state, retval)

    sync_ok.after_signal = after_sync
    async_fails.after_signal = after_async
    async with running_worker(app):
        a = await sync_ok.adelay()
        await until(lambda: [n for n, _ in heard].count("task_postrun") == 1, app.clock)  # type: ignore[arg-type]
        b = await async_fails.adelay()
        await until(lambda: [n for n, _ in heard].count("task_postrun") == 2, app.clock)  # type: ignore[arg-type]
    names = [name for name, _ in heard if name != "worker_ready" and name != "worker_shutdown"]
    assert names == [
        "task_received",
        "task_prerun",
        "task_success",
        "after",
        "task_postrun",
        "task_received",
        "task_prerun",
        "task_failure",
        "after",
        "task_postrun",
    ]
    assert seen[0] == ("SUCCESS", 7, a.id)
    assert seen[1][0] == "FAILURE" and isinstance(seen[1][1], KeyError) and seen[1][2] == b.id


async def test_revoked_and_expired_messages_send_task_revoked(heard: list[Any]) -> None:
    app = memory_app(default_queue="q")

    @app.task(name="t.never")
    async def never() -> None:
        raise AssertionError("a discarded task ran")

    async with running_worker(app) as worker:
        processor = worker._processor_of()
        processor.is_revoked = lambda task_id: task_id == "gone"
        await never.aapply_async(task_id="gone")
        past = datetime.fromtimestamp(app.clock.time() - 5, UTC)
        await never.aapply_async(task_id="late", expires=past)
        await until(lambda: [n for n, _ in heard].count("task_revoked") == 2, app.clock)  # type: ignore[arg-type]
    revoked = {named["request"].id: named for name, named in heard if name == "task_revoked"}
    assert {key: (r["expired"], r["terminated"]) for key, r in revoked.items()} == {
        "gone": (False, False),
        "late": (True, False),
    }
    assert all(r["sender"] is never and r["request"].name == "t.never" for r in revoked.values())
    assert [name for name, _ in heard if name in ("task_received", "task_prerun")] == []


@pytest.mark.parametrize("setting", [True, False])
async def test_track_started_stores_started_before_the_run(setting: bool) -> None:
    app = memory_app(default_queue="q", result_backend="memory://", track_started=setting)
    states: list[tuple[str, Any]] = []

    @app.task(name="t.look")
    async def look(task_id: str) -> None:
        stored = await AsyncResult(task_id, app).arefresh()
        states.append((stored.state, stored.value))

    @app.task(name="t.tracked")
    async def tracked(task_id: str) -> None:
        await look.fn(task_id)

    tracked.track_started = True  # a task's own choice wins over the setting
    async with running_worker(app) as worker:
        for count, task in enumerate((look, tracked), 1):
            task_id = f"id-{task.name}"
            await task.aapply_async((task_id,), task_id=task_id)
            await until(lambda: len(states) >= count, app.clock)  # type: ignore[arg-type]  # noqa: B023
    started = {"pid": os.getpid(), "hostname": worker.nodename}
    assert states == [("STARTED", started) if setting else ("PENDING", None), ("STARTED", started)]


async def test_before_task_publish_receivers_can_add_headers() -> None:
    app = memory_app(default_queue="q")

    @app.task(name="t.noop")
    async def noop() -> None:
        return None

    def inject(sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
        assert headers is not None and headers["task"] == "t.noop"
        headers["traceparent"] = "00-abc-def-01"

    signals.before_task_publish.connect(inject)
    try:
        await noop.adelay()
    finally:
        signals.before_task_publish.disconnect(inject)
    transport = (await app.publisher()).transport
    [delivery] = await drain(transport, "q")
    assert delivery.properties.headers["traceparent"] == "00-abc-def-01"
    assert delivery.properties.headers["task"] == "t.noop"


def test_a_request_shows_the_messages_stamps_and_what_follows_as_celerys_does() -> None:
    from hare.core.message import Embed, Message
    from hare.worker.request import Request

    errback = {"task": "t.err", "args": [], "kwargs": {}, "options": {"stamped_headers": ["m"]}}
    message = Message(
        id="r1",
        task="t.add",
        args=(1, 2),
        kwargs={"z": 3},
        embed=Embed(errbacks=(errback,)),
        headers={"stamped_headers": ["m"], "stamps": {"m": "x"}},
    )
    request = Request(message=message, queue="q")
    assert (request.stamped_headers, request.stamps) == (["m"], {"m": "x"})
    assert request.errbacks == [errback] and request.callbacks is None
    # Celery's worker Request keeps the body as `_Request__payload`, which code reaches for.
    args, kwargs, follows = request._Request__payload  # type: ignore[attr-defined]
    assert (args, kwargs, follows["errbacks"], follows["chain"]) == (
        [1, 2],
        {"z": 3},
        [errback],
        None,
    )
    bare = Request(message=Message(id="r2", task="t.add"), queue="q")
    assert (bare.stamped_headers, bare.stamps) == ([], {})


#: The suite's stamped `fail.si()`, as Celery's client sends it once replaced twice.
_STAMPED_HEADERS = {**STAMP_HEADERS, "replaced_task_nesting": 2}


async def test_task_received_gets_celerys_request_attributes(heard: list[Any]) -> None:
    """Celery's worker `Request` as receivers read it: nesting, stamps, errbacks, ids."""
    app = memory_app(default_queue="q")

    @app.task(name="t.plain")
    async def plain() -> None:
        return None

    @app.task(name="t.stamped")
    async def stamped() -> None:
        return None

    eta = datetime.fromtimestamp(app.clock.time(), UTC)
    async with running_worker(app):
        first = await plain.adelay()
        second = await stamped.aapply_async(
            headers=_STAMPED_HEADERS,
            link_error=[stamped_signature("t.plain", "link_error", immutable=True)],
            parent_id="p",
            root_id="r",
            shadow="shown",
            eta=eta,
            time_limit=9,
        )
        await until(lambda: [n for n, _ in heard].count("task_postrun") == 2, app.clock)  # type: ignore[arg-type]
    received = {named["request"].id: named["request"] for n, named in heard if n == "task_received"}
    plain_request, request = received[first.id], received[second.id]
    # Celery's defaults for a message neither replaced nor stamped
    assert plain_request.replaced_task_nesting == 0
    assert (plain_request.stamped_headers, plain_request.stamps) == ([], {})
    assert plain_request.errbacks is None and plain_request.callbacks is None
    assert plain_request.root_id == first.id and plain_request.parent_id is None
    # ... and a replaced, stamped one with a stamped errback (Celery's integration suite reads
    # these in task_received: test_replaced_task_nesting_*, test_err_linking_stamped_sig)
    assert request.replaced_task_nesting == 2
    assert request.stamped_headers == ["mtask_id"]
    assert request.stamps == {"mtask_id": "1234"}
    (errback,) = request.errbacks
    assert all(name in errback["options"] for name in errback["options"]["stamped_headers"])
    assert errback["options"]["mtask_id"] == "1234"
    assert (request.root_id, request.parent_id) == ("r", "p")
    assert (request.name, request.type, request.task_name) == ("shown", "t.stamped", "shown")
    assert request.task_id == second.id and request.eta == eta
    assert request.time_limits == (9.0, None) and request.correlation_id == second.id


async def test_stamped_errbacks_are_sent_and_called_with_their_stamps(heard: list[Any]) -> None:
    """A stamped errback that takes the failed id goes out with its stamps as headers; one
    that takes the request is called with a request that shows the failed task's stamps."""
    app = memory_app(default_queue="q", result_backend="memory://", result_extended=True)
    seen: list[tuple[str, Any]] = []

    @app.task(name="t.fail")
    async def fail() -> None:
        raise ValueError("expected")

    @app.task(name="t.by_id")
    async def by_id(value: str) -> None:
        running = context.current()
        assert running is not None
        seen.append(("by_id", (value, dict(running.message.headers))))

    @app.task(name="t.with_request")
    def with_request(request: Any, exc: BaseException, traceback: Any) -> None:
        seen.append(("with_request", (request.id, request.stamps, request.stamped_headers)))

    async with running_worker(app):
        sent = await fail.aapply_async(
            headers=_STAMPED_HEADERS,
            link_error=[
                stamped_signature("t.by_id", "link_error", immutable=True),
                stamped_signature("t.with_request"),
            ],
        )
        await until(lambda: len(seen) == 2, app.clock)  # type: ignore[arg-type]
        stored = await AsyncResult(sent.id, app).arefresh()
    by_name = dict(seen)
    value, headers = by_name["by_id"]
    assert value == "link_error"
    assert headers["stamped_headers"] == ["mtask_id"] and headers["stamps"] == {"mtask_id": "1234"}
    assert by_name["with_request"] == (sent.id, {"mtask_id": "1234"}, ["mtask_id"])
    errback_received = [
        named["request"]
        for n, named in heard
        if n == "task_received" and named["request"].name == "t.by_id"
    ]
    assert [r.stamps for r in errback_received] == [{"mtask_id": "1234"}]
    # result_extended: Celery stores the stamps with the result
    assert stored.extra["stamped_headers"] == ["mtask_id"]
    assert stored.extra["mtask_id"] == "1234"
