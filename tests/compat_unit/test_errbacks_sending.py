"""Errbacks (`link_error`) of hare_compat tasks on a hare worker, called as Celery's worker
calls them (`Backend._call_task_errbacks`): a task function that takes more than one
positional argument after the errback's own is called in the worker with `(request, exc,
traceback)`; any other task (one taking just the failed task's id, a bound task, a
class-based task) is sent, the failed task's id first, as a message with the errback's
stamps. On the memory broker with a hare worker.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from hare.testing import running_worker
from hare_compat import Celery, Task
from hare_compat.signals import task_received
from tests.runtime import STAMP_HEADERS, stamped_signature

pytestmark = pytest.mark.anyio


def make_app(calls: list[tuple[Any, ...]]) -> Celery:
    app = Celery("errb", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"
    task = functools.partial(app.task, shared=False)

    @task(name="errb.fail")
    def fail() -> None:
        raise ValueError("expected")

    @task(name="errb.note")
    def note(value: Any) -> Any:
        request = note.request
        calls.append(("note", value, request.called_directly, request.stamps))
        return value

    @task(name="errb.identity")
    def identity(value: Any) -> Any:
        request = identity.request
        calls.append(("identity", value, request.called_directly, request.stamps))
        return value

    @task(name="errb.handler")
    def handler(request: Any, exc: BaseException, traceback: Any) -> None:
        calls.append(("handler", request.id, repr(exc), request.stamps))

    @task(name="errb.bound_handler", bind=True)
    def bound_handler(self: Any, *args: Any) -> None:
        calls.append(("bound_handler", args, self.request.called_directly, self.request.stamps))

    class ClassHandler(Task):
        name = "errb.class_handler"

        def run(self, *args: Any) -> None:
            calls.append(("class_handler", args, self.request.called_directly))

    app.register_task(ClassHandler())
    return app


async def test_errbacks_are_sent_or_called_here_by_celerys_rule() -> None:
    # (hare_compat's client does not stamp: the failing task is sent as Celery's client
    # sends a stamped `fail.si()` with stamped errbacks)
    calls: list[tuple[Any, ...]] = []
    app = make_app(calls)
    hare = app.__hare_app__()
    received: list[str] = []

    def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
        received.append(request.name)

    task_received.connect(on_received)
    try:
        async with running_worker(hare):
            errbacks = [
                # Celery's suite (test_err_linking_stamped_sig): `identity.si("link_error")`
                stamped_signature("errb.identity", "link_error", immutable=True),
                stamped_signature("errb.note"),
                stamped_signature("errb.handler"),
                stamped_signature("errb.bound_handler"),
                stamped_signature("errb.class_handler"),
            ]
            failed = await hare.asend_task("errb.fail", headers=STAMP_HEADERS, link_error=errbacks)
            for _ in range(400):
                if len(calls) == len(errbacks):
                    break
                await asyncio.sleep(0.01)
    finally:
        task_received.disconnect(on_received)
        await hare.aclose()
    by_name = {call[0]: call[1:] for call in calls}
    stamps = {"mtask_id": "1234"}
    # sent: each as a task message of its own (not called directly), with its stamps
    assert by_name["identity"] == ("link_error", False, stamps)
    assert by_name["note"] == (failed.id, False, stamps)
    # bound and class-based tasks are sent whatever they take (Celery's `__header__` rule)
    assert by_name["bound_handler"] == ((failed.id,), False, stamps)
    assert by_name["class_handler"] == ((failed.id,), False)
    # called here, with the failed task's request (its stamps visible)
    assert by_name["handler"] == (failed.id, "ValueError('expected')", stamps)
    assert sorted(received) == [
        "errb.bound_handler",
        "errb.class_handler",
        "errb.fail",
        "errb.identity",
        "errb.note",
    ]
