"""`result_extended=True`: a result also carries the task's name, args, kwargs, worker,
retries and queue, in Celery's result format (so a Celery client reads them too)."""

from __future__ import annotations

import pytest

from hare.testing import running_worker
from hare_compat import Celery

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("extended", [True, False])
async def test_an_extended_result_carries_the_call(extended: bool) -> None:
    app = Celery("ext", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.update(result_extended=extended, task_default_queue="work")

    @app.task(name="ext.add")
    def add(x: int, y: int, *, z: int = 0) -> int:
        return x + y + z

    hare = app.__hare_app__()
    async with running_worker(hare) as worker:
        result = await add.aapply_async((2, 3), {"z": 4})
        assert await result.aget(timeout=10) == 9
    if extended:
        assert (result.name, result.args, result.kwargs) == ("ext.add", [2, 3], {"z": 4})
        assert (result.worker, result.retries, result.queue) == (worker.nodename, 0, "work")
    else:
        assert (result.args, result.kwargs, result.worker, result.queue) == (None,) * 4
    await hare.aclose()
