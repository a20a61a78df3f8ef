# mypy: allow-untyped-decorators
"""hare_compat's Task on hare's worker (memory broker): options, request, hooks, predicates."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import pytest

from hare import signals
from hare.errors import ConfigurationError, NotSupportedError
from hare.testing import ManualClock, drain, eventually, memory_app, running_worker
from hare_compat.app.task import Task
from hare_compat.exceptions import Ignore, Reject
from hare_compat.ratelimit import RateLimiter, TokenBucket, parse_rate
from tests.compat_fake import FakeApp

pytestmark = pytest.mark.anyio


def make_app(clock: ManualClock | None = None, **conf: Any) -> FakeApp:
    hare = memory_app(clock or ManualClock(), default_queue="work", result_backend="memory://")
    return FakeApp(hare, **conf)


# -- declaring tasks ----------------------------------------------------------------------------


def test_decorator_makes_one_subclass_per_function_registered_by_name() -> None:
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="custom.name", bind=True, max_retries=7)
    def bound(self: Task) -> Task:
        return self

    assert add.name == "tests.compat_unit.test_task.add"
    assert app.tasks == {add.name: add, "custom.name": bound}
    assert isinstance(add, Task) and add.__name__ == "add"
    assert type(add) is not type(bound) and type(add).__bases__ == (Task,)
    assert add(2, 3) == 5
    assert bound() is bound
    assert bound.max_retries == 7 and add.max_retries == 3
    assert repr(add) == "<@task: tests.compat_unit.test_task.add of tests>"
    assert app.task(name="custom.name")(lambda: 0) is bound  # an existing name is kept


def test_options_hare_cannot_honour_are_refused_by_name() -> None:
    app = make_app()

    def fn() -> None: ...

    with pytest.raises(NotSupportedError, match="exchange"):
        app.task(exchange="feeds")(fn)
    with pytest.raises(NotSupportedError, match="bogus_option, other"):
        app.task(bogus_option=1, other=2)(fn)
    with pytest.raises(ConfigurationError, match="max_retries"):
        app.task(max_retries=-1)(fn)
    with pytest.raises(ConfigurationError, match="rate_limit"):
        app.task(rate_limit="10/d")(fn)

    class WithSetting(Task):
        my_setting = "default"

    task = app.task(base=WithSetting, my_setting="mine", name="t.custom")(fn)
    assert task.my_setting == "mine"  # type: ignore[attr-defined]


def test_acks_late_false_is_accepted_with_one_notice(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    with caplog.at_level(logging.WARNING, logger="hare_compat.task"):
        app.task(name="t.early", acks_late=False)(lambda: None)
        app.task(name="t.late", acks_late=True)(lambda: None)
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1
    assert "t.early: acks_late=False has no effect" in notices[0]


def test_a_task_serializer_other_than_the_apps_is_refused_when_bound() -> None:
    app = make_app()
    app.task(name="t.pickled", serializer="pickle")(lambda: None)
    with pytest.raises(NotSupportedError, match="serializer='pickle'"):
        app.finalize()


def test_the_worker_entry_is_a_coroutine_function_for_async_tasks() -> None:
    app = make_app()

    @app.task(name="t.sync")
    def sync() -> None: ...

    @app.task(name="t.async")
    async def run_async() -> None: ...

    app.finalize()
    assert not app.hare.tasks["t.sync"].is_async
    assert app.hare.tasks["t.async"].is_async
    assert inspect.iscoroutinefunction(app.hare.tasks["t.async"].fn)
    assert app.hare.tasks["t.async"].sender is run_async
    policy = app.hare.tasks["t.async"].options.retry
    assert policy.max_retries is None and policy.autoretry_for == ()


def test_typing_refuses_calls_the_signature_cannot_take() -> None:
    app = make_app(task_always_eager=True)

    @app.task(name="t.two")
    def two(a: int, b: int) -> int:
        return a + b

    @app.task(name="t.loose", typing=False)
    def loose(a: int) -> int:
        return a

    with pytest.raises(TypeError, match="t.two"):
        two.delay(1)
    assert two.delay(1, b=2).get() == 3
    assert loose.apply_async((1, 2)).failed()  # not checked: it fails when it runs


# -- the request --------------------------------------------------------------------------------


async def test_request_in_a_worker_mirrors_the_message() -> None:
    app = make_app()
    seen: dict[str, Any] = {}

    @app.task(name="t.look", bind=True)
    def look(self: Task, x: int, *, y: int = 0) -> None:
        r = self.request
        seen.update(
            id=r.id, retries=r.retries, args=r.args, kwargs=r.kwargs, root_id=r.root_id,
            parent_id=r.parent_id, hostname=r.hostname, delivery_info=r.delivery_info,
            is_eager=r.is_eager, called_directly=r.called_directly, headers=r.headers,
            eta=r.eta, timelimit=r.timelimit, reply_to=r.reply_to, task=r.get("task"),
            missing=r.get("missing", "dflt"), correlation_id=r.correlation_id,
        )  # fmt: skip

    app.finalize()
    async with running_worker(app.hare):
        result = await look.aapply_async(
            (1,), {"y": 2}, headers={"trace": "t-1"}, soft_time_limit=5
        )
        await eventually(lambda: seen)
    assert seen["id"] == result.id == seen["root_id"] == seen["correlation_id"]
    assert seen["retries"] == 0 and seen["parent_id"] is None
    assert seen["args"] == [1] and seen["kwargs"] == {"y": 2}
    assert seen["hostname"] == app.hare.origin or "@" in seen["hostname"]
    assert seen["delivery_info"]["routing_key"] == "work"
    assert seen["is_eager"] is False and seen["called_directly"] is False
    assert seen["headers"] == {"trace": "t-1"}
    assert seen["eta"] is None and seen["timelimit"] == [None, 5]
    assert seen["task"] == "t.look" and seen["missing"] == "dflt"


async def test_called_directly_outside_a_worker_for_sync_and_async_tasks() -> None:
    app = make_app()

    @app.task(name="t.s", bind=True)
    def s(self: Task) -> tuple[bool, bool]:
        return self.request.called_directly, self.request.is_eager

    @app.task(name="t.a", bind=True)
    async def a(self: Task) -> tuple[bool, Any]:
        await asyncio.sleep(0)
        return self.request.called_directly, self.request.args

    assert s() == (True, False)
    assert await a() == (True, ())
    assert s.request.called_directly is True  # the default request outside any call


# -- hooks and signals --------------------------------------------------------------------------


class Recorder(Task):
    events: list[str]

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        self.events.append("before_start")

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self.events.append(f"on_success:{retval}")

    def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.events.append(f"on_failure:{exc!r}:{'Error' in str(einfo)}")

    def on_retry(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.events.append(f"on_retry:{exc!r}")

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        self.events.append(f"after_return:{status}:{retval!r}")


def connect_signals(task: Task, events: list[str]) -> list[tuple[signals.Signal, Any, Task]]:
    connected = []
    for signal in (
        signals.task_prerun,
        signals.task_success,
        signals.task_failure,
        signals.task_retry,
        signals.task_postrun,
    ):

        def receiver(sender: Any = None, _name: str = signal.name, **kwargs: Any) -> None:
            events.append(f"signal:{_name}")

        signal.connect(receiver, sender=task)
        connected.append((signal, receiver, task))
    return connected


@pytest.mark.parametrize("is_async", [False, True])
async def test_hooks_run_in_celerys_order_between_the_workers_signals(is_async: bool) -> None:
    app = make_app()
    events: list[str] = []

    class Hooks(Recorder):
        pass

    Hooks.events = events

    if is_async:

        @app.task(name="t.ok", base=Hooks)
        async def ok(x: int) -> int:
            events.append("run")
            return x + 1

        @app.task(name="t.bad", base=Hooks)
        async def bad() -> None:
            events.append("run")
            raise KeyError("k")

    else:

        @app.task(name="t.ok", base=Hooks)
        def ok(x: int) -> int:
            events.append("run")
            return x + 1

        @app.task(name="t.bad", base=Hooks)
        def bad() -> None:
            events.append("run")
            raise KeyError("k")

    app.finalize()
    connected = connect_signals(ok, events) + connect_signals(bad, events)
    request_ids: list[str | None] = []

    def see_request(sender: Any = None, **kwargs: Any) -> None:
        request_ids.append(sender.request.id)

    signals.task_success.connect(see_request, sender=ok)
    connected.append((signals.task_success, see_request, ok))
    try:
        async with running_worker(app.hare):
            sent = await ok.aapply_async((1,))
            await eventually(lambda: "signal:task_postrun" in events)
            done = len(events)
            await bad.aapply_async()
            await eventually(lambda: events[-1:] == ["signal:task_postrun"] and len(events) > done)
    finally:
        for signal, receiver, sender in connected:
            assert signal.disconnect(receiver, sender=sender)
    assert events[:done] == [
        "signal:task_prerun",
        "before_start",
        "run",
        "on_success:2",
        "signal:task_success",
        "after_return:SUCCESS:2",
        "signal:task_postrun",
    ]
    assert request_ids == [sent.id]  # the request is still current when task_success goes out
    assert events[done:] == [
        "signal:task_prerun",
        "before_start",
        "run",
        "on_failure:KeyError('k'):True",
        "signal:task_failure",
        "after_return:FAILURE:KeyError('k')",
        "signal:task_postrun",
    ]


async def test_a_failing_on_success_handler_is_logged_not_a_task_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()

    class Broken(Task):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            raise RuntimeError("handler bug")

    @app.task(name="t.fine", base=Broken)
    async def fine() -> int:
        return 1

    app.finalize()
    async with running_worker(app.hare):
        result = await fine.aapply_async()
        assert await result.aget(timeout=5) == 1
    assert "on_success handler raised" in caplog.text


# -- Reject, Ignore -----------------------------------------------------------------------------


async def test_reject_dead_letters_ignore_acks_and_requeue_runs_again() -> None:
    app = make_app()
    runs: list[str] = []

    @app.task(name="t.reject")
    async def reject() -> None:
        runs.append("reject")
        raise Reject("bad input", requeue=False)

    @app.task(name="t.ignore")
    async def ignore() -> None:
        runs.append("ignore")
        raise Ignore()

    @app.task(name="t.requeue", bind=True)
    async def requeue(self: Task) -> int:
        # As Celery's worker does: the same message back, marked redelivered, not a retry.
        redelivered = self.request.delivery_info["redelivered"]
        runs.append(f"requeue:{self.request.retries}:{redelivered}")
        if not redelivered:
            raise Reject("not yet", requeue=True)
        return 5

    app.finalize()
    async with running_worker(app.hare):
        await reject.aapply_async()
        ignored = await ignore.aapply_async()
        requeued = await requeue.aapply_async()
        assert await requeued.aget(timeout=5) == 5
        transport = (await app.hare.publisher()).transport
        await eventually(lambda: transport.message_count("work.dead"))
        dead = await drain(transport, "work.dead")
        ignored_state = (await ignored.handle.arefresh()).state
    assert sorted(runs) == ["ignore", "reject", "requeue:0:False", "requeue:0:True"]
    assert [d.properties.headers["hare-dead-reason"] for d in dead] == ["rejected"]
    assert dead[0].properties.headers["hare-dead-detail"] == "bad input"
    assert ignored_state == "PENDING"  # nothing recorded


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_a_task_that_always_requeues_is_dead_lettered_at_the_delivery_limit(
    queue_type: str,
) -> None:
    hare = memory_app(ManualClock(), default_queue="work", queue_type=queue_type, delivery_limit=3)
    app = FakeApp(hare)
    runs: list[bool] = []

    @app.task(name="t.never", bind=True)
    async def never(self: Task) -> None:
        runs.append(self.request.delivery_info["redelivered"])
        raise Reject("never", requeue=True)

    app.finalize()
    async with running_worker(app.hare):
        await never.aapply_async()
        transport = (await app.hare.publisher()).transport
        await eventually(lambda: transport.message_count("work.dead"))
        dead = await drain(transport, "work.dead")
    assert runs == [False, True, True]  # delivered 3 times (delivery_limit), then dead
    assert len(dead) == 1


# -- rate limits --------------------------------------------------------------------------------


def test_parse_rate_reads_celerys_formats() -> None:
    assert parse_rate("10/s") == 10
    assert parse_rate("120/m") == 2
    assert parse_rate("3600/h") == 1
    assert parse_rate(5) == 5 and parse_rate("7") == 7
    assert parse_rate(None) == parse_rate(0) == parse_rate("") == 0
    for bad in ("x/s", "10/d", -1, True, [1]):
        with pytest.raises(ConfigurationError):
            parse_rate(bad)  # type: ignore[arg-type]


def test_the_token_bucket_spaces_starts_evenly() -> None:
    now = [100.0]
    bucket = TokenBucket(2.0, monotonic=lambda: now[0])
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.5, 1.0, 1.5]
    now[0] += 10  # refilled, but holds one token at most
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.5]


def test_the_token_bucket_is_shared_with_forked_children() -> None:
    """A prefork worker's children take from the worker's bucket, not one each."""
    import multiprocessing

    bucket = TokenBucket(2.0, monotonic=lambda: 100.0)
    child = multiprocessing.get_context("fork").Process(target=bucket.reserve)
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert bucket.reserve() == 0.5  # the child took the one token


async def test_rate_limited_async_task_starts_are_spread_on_the_clock() -> None:
    clock = ManualClock()
    app = make_app(clock)
    started: list[float] = []

    @app.task(name="t.limited", rate_limit="2/s")
    async def limited() -> None:
        started.append(clock.monotonic())

    app.finalize()
    async with running_worker(app.hare):
        for _ in range(3):
            await limited.aapply_async()
        await eventually(lambda: len(started) == 1)
        await clock.advance_by(0.5)
        await eventually(lambda: len(started) == 2)
        await clock.advance_by(0.5)
        await eventually(lambda: len(started) == 3)
    assert [t - started[0] for t in started] == [0.0, 0.5, 1.0]


async def test_rate_limited_sync_task_waits_in_its_thread() -> None:
    clock = ManualClock()
    app = make_app(clock)
    waits: list[float] = []

    @app.task(name="t.slow_down", rate_limit="60/m")
    def slow_down() -> None: ...

    app.finalize()
    slow_down._rate_limiter = RateLimiter("60/m", clock, sleep=waits.append)
    async with running_worker(app.hare, concurrency=1):
        for _ in range(3):
            await slow_down.aapply_async()
        await eventually(lambda: len(waits) == 2)
    assert waits == [1.0, 2.0]  # the first starts at once; each waits its turn


# -- sending ------------------------------------------------------------------------------------


def test_apply_async_passes_celerys_options_and_task_defaults() -> None:
    app = make_app()
    sent: list[tuple[Any, ...]] = []

    def send_task(name: str, args: Any, kwargs: Any, **options: Any) -> None:
        sent.append((name, args, kwargs, options))

    app.send_task = send_task  # type: ignore[assignment,method-assign]

    @app.task(name="t.routed", queue="emails", priority=3, expires=60, ignore_result=True)
    def routed(x: int) -> None: ...

    routed.apply_async((1,), countdown=5, retry=True)
    routed.apply_async((1,), queue="other")
    (name, args, kwargs, options), (*_, other) = sent
    assert (name, args, kwargs) == ("t.routed", (1,), None)
    assert options["queue"] == "emails" and options["priority"] == 3
    assert options["expires"] == 60 and options["ignore_result"] is True
    assert options["countdown"] == 5 and options["retry"] is True
    assert options["task_type"] is routed
    assert other["queue"] == "other"
    with pytest.raises(NotSupportedError, match="producer"):
        routed.apply_async((1,), producer=object())


async def test_update_state_from_sync_and_async_tasks_is_stored_before_the_result() -> None:
    app = make_app()
    results = app.hare.results
    assert results is not None
    stored: list[tuple[str, str, Any]] = []
    store = results.store

    async def spy(result: Any, request: Any) -> None:
        if result.state == "PROGRESS":
            for _ in range(10):  # a slow store: the result must still come after it
                await asyncio.sleep(0)
        stored.append((result.task_id, result.state, result.value))
        await store(result, request)

    results.store = spy  # type: ignore[method-assign]

    @app.task(name="t.progress_sync", bind=True)
    def progress_sync(self: Task) -> str:
        self.update_state(state="PROGRESS", meta={"done": 1})
        return "ok"

    @app.task(name="t.progress_async", bind=True)
    async def progress_async(self: Task) -> str:
        self.update_state(state="PROGRESS", meta={"done": 2})  # the sync API, on the loop
        return "done"

    app.finalize()
    async with running_worker(app.hare):
        sync_result = await progress_sync.aapply_async()
        assert await sync_result.aget(timeout=5) == "ok"
        async_result = await progress_async.aapply_async()
        assert await async_result.aget(timeout=5) == "done"
    assert stored == [
        (sync_result.id, "PROGRESS", {"done": 1}),
        (sync_result.id, "SUCCESS", "ok"),
        (async_result.id, "PROGRESS", {"done": 2}),
        (async_result.id, "SUCCESS", "done"),
    ]
    assert async_result.state == "SUCCESS"


# -- time limits, and the whole of it on the real Celery app ------------------------------------


async def test_an_async_task_catches_hares_soft_time_limit() -> None:
    from hare_compat.exceptions import SoftTimeLimitExceeded

    clock = ManualClock()
    app = make_app(clock)

    @app.task(name="t.cleanup", soft_time_limit=5, time_limit=10)
    async def cleanup() -> str:
        try:
            await clock.sleep(60)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "finished"

    app.finalize()
    async with running_worker(app.hare):
        result = await cleanup.aapply_async()
        await clock.advance_by(5)
        assert await result.aget(timeout=1) == "cleaned up"


async def test_tasks_of_the_celery_app_run_on_hares_worker() -> None:
    from hare_compat import Celery

    app = Celery("real", broker="memory://", backend="memory://", set_as_current=False)
    runs: list[tuple[int, bool]] = []

    @app.task(bind=True, max_retries=2)
    def flaky(self: Task, x: int) -> int:
        runs.append((self.request.retries, self.request.called_directly))
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return x * 2

    @app.task
    async def add(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x + y

    hare = app.__hare_app__()
    try:
        async with running_worker(hare):
            assert await (await add.adelay(2, 3)) == 5
            assert await (await flaky.adelay(21)).aget(timeout=10) == 42
    finally:
        await hare.aclose()
        app.close()
    assert runs == [(0, False), (1, False), (2, False)]


def test_track_started_reaches_the_hare_task_and_the_setting_maps() -> None:
    from hare_compat import Celery
    from hare_compat.app.mapping import hare_settings
    from hare_compat.app.task_options import NOTICES

    app = make_app(task_track_started=True)

    @app.task(name="t.default")
    def default() -> None: ...

    @app.task(name="t.off", track_started=False)
    def off() -> None: ...

    app.finalize()
    assert default._hare_task is not None and default._hare_task.track_started is True
    assert off._hare_task is not None and off._hare_task.track_started is False
    assert "track_started" not in NOTICES
    celery = Celery("shop", broker="memory://")
    assert hare_settings(celery.conf)["track_started"] is False
    celery.conf.task_track_started = True
    assert hare_settings(celery.conf)["track_started"] is True
