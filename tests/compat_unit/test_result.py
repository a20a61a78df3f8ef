"""hare_compat's result handles, states and exceptions, read back from a memory result backend."""

from __future__ import annotations

import asyncio
import copy
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

import hare.errors
from hare.context import TaskContext, running
from hare.core.message import Message
from hare.errors import NotSupportedError
from hare.results.state import TaskResult
from hare.testing import memory_app
from hare_compat import Celery, exceptions, states
from hare_compat.canvas_result import GroupResult as CanvasGroupResult
from hare_compat.result import AsyncResult, EagerResult, GroupResult, result_from_tuple
from tests.compat_fake import FakeApp


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("results", broker="memory://", backend="memory://", set_as_current=False)
    yield app
    app.close()


def store(app: Celery, result: TaskResult) -> None:
    results = app.hare.results
    assert results is not None
    results._call(results.store(result, None))


def test_state_result_and_traceback_of_stored_results(app: Celery) -> None:
    store(app, TaskResult(task_id="ok", state="SUCCESS", value=[1, 2]))
    store(app, TaskResult(task_id="bad", state="FAILURE", value=KeyError("k"), traceback="tb"))
    app.hare.results.store_state("busy", "PROGRESS", {"done": 3})  # type: ignore[union-attr]

    ok, bad, busy = app.AsyncResult("ok"), app.AsyncResult("bad"), AsyncResult("busy", app=app)
    assert (ok.state, ok.status, ok.result, ok.info) == ("SUCCESS", "SUCCESS", [1, 2], [1, 2])
    assert ok.ready() and ok.successful() and not ok.failed() and ok.get() == [1, 2]
    assert (bad.state, bad.traceback, bad.failed()) == ("FAILURE", "tb", True)
    with pytest.raises(KeyError):
        bad.get()
    assert isinstance(bad.get(propagate=False), KeyError)
    assert (busy.state, busy.info, busy.ready()) == ("PROGRESS", {"done": 3}, False)
    unknown = app.AsyncResult("never-sent")
    assert (unknown.state, unknown.result, unknown.exists(), busy.exists()) == (
        "PENDING", None, False, True,
    )  # fmt: skip
    assert ok.task_id == "ok" and ok.date_done is not None


def test_get_times_out_with_celerys_timeout_error(app: Celery) -> None:
    with pytest.raises(exceptions.TimeoutError) as info:
        app.AsyncResult("slow").get(timeout=0.05)
    assert isinstance(info.value, TimeoutError)  # the builtin catches it too


def test_get_inside_a_running_task_is_refused_as_in_celery(app: Celery) -> None:
    store(app, TaskResult(task_id="done", state="SUCCESS", value=1))
    handle = app.AsyncResult("done")
    with running(TaskContext(message=Message(id="outer", task="t.outer"))):
        with pytest.raises(RuntimeError, match=r"Never call result.get\(\) within a task"):
            handle.get()
        assert handle.get(disable_sync_subtasks=False) == 1
    with running(TaskContext(message=Message(id="e", task="t.e"), is_eager=True)):
        assert handle.get() == 1  # eager calls do not block anything


def test_awaiting_a_result_in_async_code(app: Celery) -> None:
    async def main() -> Any:
        results = app.hare.results
        assert results is not None
        handle = app.AsyncResult("later")
        waiter = asyncio.ensure_future(handle.aget(timeout=5))
        await asyncio.sleep(0)
        await results.store(TaskResult(task_id="later", state="SUCCESS", value="v"), None)
        return await waiter, await app.AsyncResult("later")

    assert asyncio.run(main()) == ("v", "v")


def test_forget_drops_the_stored_result(app: Celery) -> None:
    store(app, TaskResult(task_id="gone", state="SUCCESS", value=1))
    handle = app.AsyncResult("gone")
    assert handle.state == "SUCCESS"
    handle.forget()
    assert app.AsyncResult("gone").state == "PENDING"


def test_children_come_back_as_result_handles(app: Celery) -> None:
    children = ((("c1", None), None), (("g1", None), [(("c2", None), None)]))
    store(app, TaskResult(task_id="p", state="SUCCESS", value=0, children=children))
    got = app.AsyncResult("p").children
    assert got is not None
    assert got[0] == AsyncResult("c1", app=app)
    assert isinstance(got[1], CanvasGroupResult) and got[1].id == "g1"
    assert [r.id for r in got[1].results] == ["c2"]
    assert app.AsyncResult("unknown").children is None
    assert result_from_tuple(got[0]) is got[0]


def test_revoke_goes_to_the_apps_control() -> None:
    fake = FakeApp(memory_app())
    AsyncResult("r1", app=fake).revoke(terminate=True, signal="SIGKILL")
    assert fake.control.revoked == [
        ("r1", {"terminate": True, "signal": "SIGKILL", "reply": False, "timeout": None})
    ]
    with pytest.raises(NotSupportedError, match="connection"):
        AsyncResult("r1", app=fake).revoke(connection=object())


def test_identity_copy_and_pickle(app: Celery) -> None:
    handle = AsyncResult("x", app=app, task_name="t.x")
    assert handle == "x" and handle == AsyncResult("x", app=app) and handle != "y"
    assert hash(handle) == hash("x") and str(handle) == "x" and repr(handle) == "<AsyncResult: x>"
    assert {handle, AsyncResult("x", app=app)} == {handle}
    child = AsyncResult("c", app=app, parent=handle)
    assert child.as_list() == ["c", "x"] and child.as_tuple() == (("c", (("x", None), None)), None)
    assert copy.copy(child).parent is handle
    assert pickle.loads(pickle.dumps(AsyncResult("x", app=app))).id == "x"  # the current app's
    with pytest.raises(ValueError):
        AsyncResult(None, app=app)  # type: ignore[arg-type]


def test_unsupported_waiting_hooks_are_refused(app: Celery) -> None:
    handle = app.AsyncResult("x")
    with pytest.raises(NotSupportedError, match="callback"):
        handle.get(callback=print)
    with pytest.raises(NotSupportedError, match="then"):
        handle.then(print)


def test_eager_result() -> None:
    ok = EagerResult("e1", 5, states.SUCCESS, name="t.e")
    assert (ok.id, ok.state, ok.status, ok.result, ok.get(), ok.ready()) == (
        "e1", "SUCCESS", "SUCCESS", 5, 5, True,
    )  # fmt: skip
    assert ok.successful() and not ok.failed() and ok.name == "t.e" and ok.traceback is None
    assert repr(ok) == "<EagerResult: e1>" and ok == "e1"
    again = pickle.loads(pickle.dumps(ok))
    assert (again.id, again.result, again.state) == ("e1", 5, "SUCCESS")
    failed = EagerResult("e2", ValueError("v"), states.FAILURE, traceback="tb")
    with pytest.raises(ValueError):
        failed.get()
    assert isinstance(failed.get(propagate=False), ValueError)
    ok.revoke()
    assert ok.state == "REVOKED" and isinstance(ok.result, exceptions.TaskRevokedError)
    with pytest.raises(exceptions.TaskRevokedError):
        ok.get()
    assert EagerResult("e3", None, states.IGNORED).get() is None
    ok.forget()  # nothing stored: nothing to do
    assert asyncio.run(EagerResult("e4", 4, states.SUCCESS).aget()) == 4


def test_states_are_celerys() -> None:
    from celery import states as real

    for name in real.__all__:
        if name not in ("precedence", "state"):
            assert getattr(states, name) == getattr(real, name), name
    assert states.ALL_STATES == real.ALL_STATES
    assert states.state(states.PENDING) < states.state(states.SUCCESS)
    assert states.state("PROGRESS") > states.state(states.STARTED)
    assert not states.state("PROGRESS") > states.state(states.SUCCESS)
    assert [states.precedence(s) for s in ("SUCCESS", "CUSTOM", "PENDING")] == [0, 2, 8]


def test_exceptions_are_celerys_names_and_hares_classes_where_hare_raises_them() -> None:
    from celery import exceptions as real

    missing = {
        name
        for name in real.__all__
        if not hasattr(exceptions, name) and name != "CeleryCommandException"  # click's
    }
    assert missing == set()
    assert exceptions.SoftTimeLimitExceeded is hare.errors.SoftTimeLimitExceeded
    assert exceptions.TimeLimitExceeded is hare.errors.TimeLimitExceeded
    assert exceptions.TaskRevokedError is hare.errors.TaskRevoked
    assert exceptions.OperationalError is hare.errors.BrokerError
    assert issubclass(exceptions.Ignore, hare.errors.Ignore)
    assert issubclass(exceptions.ImproperlyConfigured, hare.errors.ConfigurationError)
    assert issubclass(exceptions.NotRegistered, KeyError)
    assert issubclass(exceptions.MaxRetriesExceededError, exceptions.TaskError)
    error = exceptions.MaxRetriesExceededError("m", task_args=(1,), task_kwargs={"a": 2})
    assert (error.task_args, error.task_kwargs) == ((1,), {"a": 2})
    assert GroupResult is CanvasGroupResult


@pytest.mark.anyio
async def test_a_sync_task_that_returns_a_result_handle_stores_its_tuple() -> None:
    from hare.testing import running_worker

    app = Celery("handles", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"

    @app.task(name="handles.leaf")
    def leaf() -> int:
        return 1

    @app.task(name="handles.starter")
    def starter() -> Any:
        return leaf.delay()  # a handle is awaitable, yet a sync task returns it as a value

    hare = app.__hare_app__()
    async with running_worker(hare):
        result = await starter.aapply_async()
        stored = await result.aget(timeout=10)
    [[leaf_id, parent], group_part] = stored
    assert isinstance(leaf_id, str) and parent is None and group_part is None
    await hare.aclose()
