"""A task declared `ignore_result=True` has no result stored by the worker, even when a client
sends it by name without the option (Celery's worker goes by the task's own setting)."""

from __future__ import annotations

import pytest

from hare_compat import Celery
from hare_compat.signals import task_postrun
from tests.amqp.helpers import eventually
from tests.runtime import running_worker

pytestmark = pytest.mark.anyio


async def test_a_task_that_ignores_its_result_is_not_stored_when_sent_by_name() -> None:
    app = Celery("proj", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "q"
    done: list[str] = []

    @app.task(name="t.quiet", ignore_result=True)
    def quiet() -> int:
        return 1

    @app.task(name="t.loud")
    def loud() -> int:
        return 2

    task_postrun.connect(lambda task_id=None, **_: done.append(task_id), dispatch_uid="ig")
    try:
        app.finalize()
        async with running_worker(app.__hare_app__()):
            # Sent by name, without ignore_result: the worker goes by the task's own setting.
            silent = await app.asend_task("t.quiet")
            stored = await app.asend_task("t.loud")
            assert await stored.aget(timeout=5) == 2
            await eventually(lambda: silent.id in done)
    finally:
        task_postrun.disconnect(dispatch_uid="ig")
    assert app.backend.get_task_meta(silent.id)["status"] == "PENDING"
    assert app.backend.get_task_meta(stored.id)["status"] == "SUCCESS"
