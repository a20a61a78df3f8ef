# mypy: allow-untyped-decorators
"""Eager mode (`apply()`, `task_always_eager`): the same hooks, signals, retries and results as
Celery's, checked against the installed Celery itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hare.context import current
from hare.errors import NotSupportedError
from hare_compat import Celery
from hare_compat.app.task import Task
from hare_compat.exceptions import Ignore, Reject, Retry
from hare_compat.result import EagerResult

celery = pytest.importorskip("celery")


def run_scenarios(app: Any, base: type, exceptions: Any, signals: Any) -> list[str]:
    """The same tasks and calls on either Celery or hare_compat; the log of what happened."""
    events: list[str] = []
    receivers = []
    for name in ("task_prerun", "task_postrun", "task_success", "task_failure", "task_retry"):

        def receiver(sender: Any = None, _name: str = name, **kwargs: Any) -> None:
            events.append(f"signal:{_name}:{kwargs.get('state', '')}")

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    try:
        tasks = define_tasks(app, hooks_base(base, events), exceptions, events)
        play(tasks, events)
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)
    return events


def hooks_base(base: type, events: list[str]) -> type:
    class Hooks(base):  # type: ignore[misc]
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            events.append(f"before_start:{list(args)}")

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            events.append(f"on_success:{retval}")

        def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            events.append(f"on_failure:{type(exc).__name__}:{type(einfo).__name__}")

        def on_retry(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            events.append(f"on_retry:{exc!r}")

        def after_return(self, status: str, retval: Any, *rest: Any) -> None:
            events.append(f"after_return:{status}:{type(retval).__name__}:{rest[-1]}")

    return Hooks


def define_tasks(app: Any, hooks: type, exceptions: Any, events: list[str]) -> dict[str, Any]:
    @app.task(base=hooks, bind=True, max_retries=2, name="t.retrying")
    def retrying(self: Any, x: int) -> None:
        r = self.request
        events.append(f"run:{r.retries}:{r.is_eager}:{r.called_directly}:{list(r.args)}")
        raise self.retry(countdown=5, exc=ValueError("boom"))

    @app.task(base=hooks, name="t.ok")
    def ok(x: int) -> int:
        return x + 1

    @app.task(base=hooks, name="t.fail")
    def fail(x: int) -> None:
        raise KeyError(x)

    @app.task(base=hooks, name="t.reject")
    def reject(x: int) -> None:
        raise exceptions.Reject("no", requeue=False)

    @app.task(base=hooks, name="t.ignore")
    def ignore(x: int) -> None:
        raise exceptions.Ignore()

    @app.task(
        base=hooks, bind=True, autoretry_for=(ZeroDivisionError,), retry_backoff=True,
        retry_jitter=False, max_retries=2, name="t.auto",
    )  # fmt: skip
    def auto(self: Any, x: int) -> float:
        events.append(f"auto:{self.request.retries}")
        return 1 / 0

    return {
        "retrying": retrying, "ok": ok, "fail": fail, "reject": reject, "ignore": ignore,
        "auto": auto, **define_retrying_tasks(app, events),
    }  # fmt: skip


def define_retrying_tasks(app: Any, events: list[str]) -> dict[str, Any]:
    @app.task(bind=True, max_retries=3, name="t.newargs")
    def newargs(self: Any, x: int, y: int = 0) -> int:
        events.append(f"newargs:{self.request.retries}:{x}:{y}")
        if self.request.retries < 2:
            raise self.retry(kwargs={"y": y + 1}, countdown=1)
        return x + y

    @app.task(bind=True, max_retries=5, name="t.override")
    def override(self: Any) -> None:
        events.append(f"override:{self.request.retries}")
        raise self.retry(max_retries=1, countdown=0)

    @app.task(bind=True, name="t.nothrow")
    def nothrow(self: Any) -> int:
        events.append(f"nothrow:{type(self.retry(throw=False, countdown=0)).__name__}")
        return 7

    @app.task(bind=True, name="t.child")
    def child(self: Any) -> int:
        r = self.request
        events.append(
            f"child:{r.parent_id is not None}:{r.root_id == r.parent_id}:{r.delivery_info}"
            f":{r.timelimit}:{r.ignore_result}:{r.headers}"
        )
        return 1

    @app.task(bind=True, name="t.parent", time_limit=10)
    def parent(self: Any) -> int:
        events.append(f"parent:{self.request.id == self.request.root_id}:{self.request.timelimit}")
        return int(child.apply().get())

    return {"newargs": newargs, "override": override, "nothrow": nothrow, "child": child,
            "parent": parent}  # fmt: skip


def play(t: dict[str, Any], events: list[str]) -> None:
    def call(label: str, fn: Callable[[], Any]) -> None:
        try:
            result = fn()
            events.append(f"== {label}: {result.state}:{type(result.result).__name__}")
        except BaseException as exc:
            events.append(f"== {label}: raised {type(exc).__name__}")

    call("ok", lambda: t["ok"].delay(1))
    call("fail", lambda: t["fail"].delay(1))
    call("fail propagated", lambda: t["fail"].apply((1,), throw=True))
    call("reject", lambda: t["reject"].delay(1))
    call("ignore", lambda: t["ignore"].delay(1))
    call("retrying", lambda: t["retrying"].delay(1))
    call("retry propagated", lambda: t["retrying"].apply((1,), throw=True))
    call("auto", lambda: t["auto"].delay(1))
    call("newargs", lambda: t["newargs"].apply((1,), {"y": 5}))
    call("override", lambda: t["override"].delay())
    call("nothrow", lambda: t["nothrow"].delay())
    call("parent", lambda: t["parent"].apply())
    call("child", lambda: t["child"].apply(headers={"a": 1}, ignore_result=True))
    call("direct retry", lambda: t["retrying"](1))
    result = t["ok"].apply((1,))
    result.revoke()
    call("revoked get", lambda: result.get())


@pytest.fixture
def compat_app() -> Iterator[Celery]:
    app = Celery("eager", broker="memory://", task_always_eager=True, set_as_current=False)
    yield app
    app.close()


def test_eager_mode_behaves_as_celerys_in_every_scenario(compat_app: Celery) -> None:
    from celery import Celery as RealCelery
    from celery import Task as RealTask
    from celery import exceptions as real_exceptions
    from celery import signals as real_signals

    from hare import signals as hare_signals
    from hare_compat import exceptions as compat_exceptions

    logging.disable(logging.CRITICAL)
    try:
        real = RealCelery("eager", broker="memory://", set_as_current=False)
        real.conf.task_always_eager = True
        expected = run_scenarios(real, RealTask, real_exceptions, real_signals)
        got = run_scenarios(compat_app, compat_app.Task, compat_exceptions, hare_signals)
    finally:
        logging.disable(logging.NOTSET)
    # The one deliberate difference: hare's revoked-task error is hare.errors.TaskRevoked.
    assert expected[-1] == "== revoked get: raised TaskRevokedError"
    assert got[-1] == "== revoked get: raised TaskRevoked"
    assert got[:-1] == expected[:-1]
    assert "== retrying: FAILURE:ValueError" in got  # the scenarios did run
    assert got.count("signal:task_retry:") == 7  # retrying 2, auto 2, newargs 2, override 1


def test_task_eager_propagates_raises_the_tasks_exception(compat_app: Celery) -> None:
    compat_app.conf.task_eager_propagates = True

    @compat_app.task(name="t.boom")
    def boom() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        boom.delay()
    failed = boom.apply(throw=False)
    assert isinstance(failed, EagerResult) and failed.failed()
    assert isinstance(failed.result, KeyError)
    assert failed.traceback is not None and "KeyError" in failed.traceback
    with pytest.raises(KeyError):
        failed.get()
    assert isinstance(failed.get(propagate=False), KeyError)


def test_eager_calls_set_a_hare_context_and_round_trip_arguments(compat_app: Celery) -> None:
    seen: list[Any] = []

    @compat_app.task(bind=True, name="t.ctx")
    def ctx(self: Task, value: Any) -> Any:
        context = current()
        assert context is not None
        seen.append((context.is_eager, context.message.id == self.request.id, value))
        return value

    result = ctx.delay((1, 2))
    assert result.get() == [1, 2]  # JSON, as Celery's eager mode serializes
    assert seen == [(True, True, [1, 2])]
    assert current() is None


def test_async_tasks_run_eagerly_outside_a_loop_and_with_aapply_inside_one(
    compat_app: Celery,
) -> None:
    @compat_app.task(bind=True, name="t.async_retry", max_retries=3)
    async def async_retry(self: Task, x: int) -> int:
        await asyncio.sleep(0)
        if self.request.retries < 2:
            raise self.retry(countdown=1)
        return x + self.request.retries

    assert async_retry.delay(1).get() == 3
    assert async_retry.apply((10,)).result == 12

    async def in_a_loop() -> tuple[int, str]:
        with pytest.raises(NotSupportedError, match="aapply"):
            async_retry.delay(1)
        result = await async_retry.adelay(5)
        applied = await async_retry.aapply((1,))
        return result.get(), applied.state

    assert asyncio.run(in_a_loop()) == (7, "SUCCESS")


def test_eager_link_callbacks_run_with_the_result(compat_app: Celery) -> None:
    got: list[int] = []

    @compat_app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @compat_app.task(name="t.keep")
    def keep(value: int) -> None:
        got.append(value)

    assert add.apply_async((1, 2), link=keep.s()).get() == 3
    assert got == [3]


def test_hooks_mixing_async_in_a_sync_task_fail_clearly(compat_app: Celery) -> None:
    class AsyncHook(Task):
        async def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            pass

    @compat_app.task(base=AsyncHook, name="t.mixed")
    def mixed() -> int:
        return 1

    with pytest.raises(TypeError, match="cannot await"):
        mixed.apply()


def test_the_predicates_keep_celerys_signatures() -> None:
    retry = Retry(exc=KeyError("k"), when=5)
    assert str(retry) == "Retry in 5s: KeyError('k')"
    assert retry.exc is not None and retry.when == 5
    reject = Reject("why", requeue=True)
    assert (reject.reason, reject.requeue) == ("why", True)
    assert repr(reject) == "reject requeue=True: why"
    from hare.errors import Ignore as HareIgnore

    assert isinstance(Ignore(), HareIgnore)
