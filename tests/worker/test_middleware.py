"""Middleware: every hook runs at its point, in the documented order, in the task's context,
next to Celery's signals; a middleware that raises is named in the log and loses nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from hare import Hare, signals
from hare.core.message import Message
from hare.errors import Retry
from hare.middleware import DeadLettered, Middleware, Middlewares
from hare.testing import ManualClock, drain, eventually, memory_app, publish_raw, running_worker
from hare.worker.request import Request
from hare.worker.worker import Worker
from tests.runtime import GOOD_BODY

pytestmark = pytest.mark.anyio

Heard = list[tuple[str, ...]]


class Recorder(Middleware):
    """Writes each hook it sees into a shared list, with its own name."""

    def __init__(self, name: str, heard: Heard) -> None:
        self.name = name
        self.heard = heard
        self.threads: dict[str, int] = {}

    def _note(self, hook: str, *detail: str) -> None:
        self.threads[hook] = threading.get_ident()
        self.heard.append((f"{self.name}.{hook}", *detail))

    def before_publish(self, message: Message, queue: str) -> Message | None:
        self._note("before_publish", queue)
        return replace(message, headers={**message.headers, f"x-{self.name}": "seen"})

    def after_publish(self, message: Message, queue: str) -> None:
        self._note("after_publish", ",".join(sorted(k for k in message.headers if k[:2] == "x-")))

    def before_run(self, request: Request) -> None:
        self._note("before_run", request.task)

    def after_run(self, request: Request, state: str, value: Any) -> None:
        self._note("after_run", state, repr(value))

    def on_retry(self, request: Request, exception: BaseException | None) -> None:
        self._note("on_retry", type(exception).__name__)

    def on_dead_letter(self, dead: DeadLettered) -> None:
        self._note("on_dead_letter", dead.queue, dead.reason, dead.task)

    def on_worker_start(self, worker: Worker) -> None:
        self._note("on_worker_start")

    def on_worker_stop(self, worker: Worker) -> None:
        self._note("on_worker_stop")


@pytest.fixture
def heard() -> Iterator[Heard]:
    """The hooks and the task signals, in the order they happened."""
    events: Heard = []
    watched = [signals.task_prerun, signals.task_success, signals.task_postrun]
    receivers = []
    for signal in watched:

        def receiver(signal: signals.Signal, sender: Any = None, **_: Any) -> None:
            events.append((f"signal {signal.name}",))

        signal.connect(receiver)
        receivers.append((signal, receiver))
    yield events
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def app_with(heard: Heard, clock: ManualClock | None = None) -> tuple[Hare, Recorder, Recorder]:
    first, second = Recorder("m1", heard), Recorder("m2", heard)
    app = memory_app(clock, default_queue="q", middleware=[first])
    app.add_middleware(second)
    return app, first, second


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_hooks_nest_around_the_signals_in_the_documented_order(
    kind: str, heard: Heard
) -> None:
    app, first, _ = app_with(heard)
    ran_in: list[int] = []
    headers_seen: list[dict[str, Any]] = []

    def body(request_headers: dict[str, Any]) -> int:
        ran_in.append(threading.get_ident())
        headers_seen.append(request_headers)
        return 5

    if kind == "sync":

        @app.task(name="t.job")
        def job() -> int:
            from hare import context

            current = context.current()
            assert current is not None
            return body(dict(current.message.headers))

    else:

        @app.task(name="t.job")
        async def job() -> int:
            from hare import context

            current = context.current()
            assert current is not None
            return body(dict(current.message.headers))

    async with running_worker(app):
        await job.adelay()
        await eventually(lambda: any(e[0] == "signal task_postrun" for e in heard))
    assert heard == [
        ("m1.on_worker_start",),
        ("m2.on_worker_start",),
        ("m1.before_publish", "q"),
        ("m2.before_publish", "q"),
        ("m2.after_publish", "x-m1,x-m2"),
        ("m1.after_publish", "x-m1,x-m2"),
        ("signal task_prerun",),
        ("m1.before_run", "t.job"),
        ("m2.before_run", "t.job"),
        ("signal task_success",),
        ("m2.after_run", "SUCCESS", "5"),
        ("m1.after_run", "SUCCESS", "5"),
        ("signal task_postrun",),
        ("m2.on_worker_stop",),
        ("m1.on_worker_stop",),
    ]
    # What before_publish added travelled with the message; the run hooks ran where the task did.
    assert headers_seen[0]["x-m1"] == headers_seen[0]["x-m2"] == "seen"
    assert first.threads["before_run"] == first.threads["after_run"] == ran_in[0]


async def test_retries_and_dead_letters_reach_the_hooks() -> None:
    heard: Heard = []
    clock = ManualClock()
    app, _, _ = app_with(heard, clock)

    @app.task(name="t.flaky", max_retries=1)
    async def flaky() -> None:
        raise Retry(countdown=5, exc=ValueError("nope"))

    async with running_worker(app):
        await flaky.adelay()
        await eventually(lambda: ("m1.on_retry", "ValueError") in heard)
        await clock.advance_by(5)
        await eventually(lambda: any(e[0] == "m1.on_dead_letter" for e in heard))
        transport = (await app.publisher()).transport
        dead = await drain(transport, "q.dead")
    runs = [e for e in heard if e[0] in ("m1.on_retry", "m2.on_retry", "m1.after_run")]
    assert runs == [
        ("m1.on_retry", "ValueError"),
        ("m2.on_retry", "ValueError"),
        ("m1.after_run", "RETRY", "ValueError('nope')"),
        ("m1.after_run", "FAILURE", "ValueError('nope')"),
    ]
    assert [e for e in heard if e[0].endswith("on_dead_letter")] == [
        ("m1.on_dead_letter", "q", "retries-exhausted", "t.flaky"),
        ("m2.on_dead_letter", "q", "retries-exhausted", "t.flaky"),
    ]
    assert len(dead) == 1


async def test_a_message_that_never_reached_a_task_is_told_as_a_dead_letter() -> None:
    heard: Heard = []
    app, _, _ = app_with(heard)
    async with running_worker(app):
        transport = (await app.publisher()).transport
        await publish_raw(transport, "q", GOOD_BODY, headers={"task": "t.nope", "id": "6"})
        await eventually(lambda: any(e[0] == "m2.on_dead_letter" for e in heard))
    assert ("m1.on_dead_letter", "q", "unknown-task", "t.nope") in heard


class Broken(Middleware):
    """Raises in every hook."""

    def before_publish(self, message: Message, queue: str) -> Message | None:
        raise RuntimeError("before_publish broke")

    def after_publish(self, message: Message, queue: str) -> None:
        raise RuntimeError("after_publish broke")

    def before_run(self, request: Request) -> None:
        raise RuntimeError("before_run broke")

    def after_run(self, request: Request, state: str, value: Any) -> None:
        raise RuntimeError("after_run broke")

    def on_dead_letter(self, dead: DeadLettered) -> None:
        raise RuntimeError("on_dead_letter broke")

    def on_worker_start(self, worker: Worker) -> None:
        raise RuntimeError("on_worker_start broke")

    def on_worker_stop(self, worker: Worker) -> None:
        raise RuntimeError("on_worker_stop broke")


async def test_a_middleware_that_raises_is_named_in_the_log_and_loses_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: Heard = []
    after = Recorder("after", heard)
    app = memory_app(default_queue="q", middleware=[Broken(), after])
    ran: list[int] = []

    @app.task(name="t.fine")
    async def fine(n: int) -> None:
        ran.append(n)

    @app.task(name="t.fails")
    async def fails() -> None:
        raise ValueError("bad")

    async with running_worker(app):
        for n in range(3):
            await fine.adelay(n)
        await fails.adelay()
        await eventually(lambda: len(ran) == 3)
        await eventually(lambda: any(e[0] == "after.on_dead_letter" for e in heard))
        dead = await drain((await app.publisher()).transport, "q.dead")
    assert ran == [0, 1, 2]  # published, run, settled, despite every hook of Broken raising
    assert len(dead) == 1
    assert sum(1 for e in heard if e[0] == "after.after_run") == 4  # the others still ran
    broken = [r for r in caplog.records if r.name == "hare.middleware"]
    hooks = {r.getMessage().split(":")[1].split()[0] for r in broken}
    assert hooks == {
        "before_publish",
        "after_publish",
        "before_run",
        "after_run",
        "on_dead_letter",
        "on_worker_start",
        "on_worker_stop",
    }
    assert all(
        r.getMessage().startswith("middleware tests.worker.test_middleware.Broken:") for r in broken
    )
    assert all(r.exc_info is not None for r in broken)


def test_registering_checks_what_it_is_given(caplog: pytest.LogCaptureFixture) -> None:
    chain = Middlewares()
    with pytest.raises(TypeError, match=r"takes an instance: Recorder\(\)"):
        chain.add(Recorder)
    with pytest.raises(TypeError, match="has none of the middleware hooks"):
        chain.add(object())
    heard: Heard = []
    one = Recorder("one", heard)
    chain.add(one)
    chain.add(one)  # the same object twice is registered once
    assert list(chain) == [one]
    assert chain.wants("on_retry")  # Recorder overrides it


def test_a_hook_that_returns_a_coroutine_is_refused_with_a_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Async(Middleware):
        async def on_worker_start(self, worker: Worker) -> None:  # type: ignore[override]
            raise AssertionError("never awaited")

    chain = Middlewares([Async()])
    assert not chain.wants("before_run")
    chain.call("on_worker_start", None)
    [record] = [r for r in caplog.records if r.name == "hare.middleware"]
    assert "on_worker_start returned an awaitable" in record.getMessage()


def test_a_hook_set_on_the_instance_is_called_too() -> None:
    seen: list[str] = []
    plain = Middleware()
    plain.before_run = lambda request: seen.append("before_run")  # type: ignore[method-assign]
    chain = Middlewares([plain])
    assert chain.wants("before_run") and not chain.wants("after_run")
    chain.call("before_run", object())
    assert seen == ["before_run"]


def test_duck_typed_middleware_needs_only_the_hooks_it_has() -> None:
    seen: list[str] = []

    class Duck:
        def before_run(self, request: object) -> None:
            seen.append("before_run")

    chain = Middlewares([Duck()])
    assert chain.wants("before_run") and not chain.wants("after_run")
    chain.call("before_run", object())
    chain.call("after_run", object(), "SUCCESS", None)
    assert seen == ["before_run"]
