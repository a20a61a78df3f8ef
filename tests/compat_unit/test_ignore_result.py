"""Whether the worker stores a success: as the message says (`ignore_result` of the call), and
when it says nothing (sent by name without the option) as the task says, as Celery's does."""

from __future__ import annotations

import pytest

from hare.testing import eventually, running_worker
from hare_compat import Celery
from hare_compat.signals import task_postrun

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
            # The call's own option wins over the task's, either way.
            kept = await quiet.aapply_async(ignore_result=False)
            dropped = await loud.aapply_async(ignore_result=True)
            assert await stored.aget(timeout=5) == 2
            assert await kept.aget(timeout=5) == 1
            await eventually(lambda: {silent.id, dropped.id} <= set(done))
    finally:
        task_postrun.disconnect(dispatch_uid="ig")
    assert app.backend.get_task_meta(silent.id)["status"] == "PENDING"
    assert app.backend.get_task_meta(stored.id)["status"] == "SUCCESS"
    assert app.backend.get_task_meta(dropped.id)["status"] == "PENDING"
