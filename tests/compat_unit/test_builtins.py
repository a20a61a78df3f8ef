"""Celery's built-in `celery.map` and `celery.starmap` on hare's worker: what a Celery
client sends for `add.map(items)` / `add.starmap(items)` (one message, the task called on
each item in the worker)."""

from __future__ import annotations

import asyncio

import pytest

from hare.testing import running_worker
from hare_compat import Celery

pytestmark = pytest.mark.anyio


async def test_map_and_starmap_call_the_task_on_each_item() -> None:
    app = Celery("builtins", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"

    @app.task(name="builtins.add")
    def add(x: int, y: int = 10) -> int:
        return x + y

    assert {"celery.map", "celery.starmap", "celery.accumulate"} <= set(app.tasks)
    hare = app.__hare_app__()
    async with running_worker(hare):
        # As a Celery client sends them: the task's signature and the items, as kwargs.
        sent = [
            (name, {"task": dict(add.s()), "it": items})
            for name, items in (("celery.map", [1, 2]), ("celery.starmap", [[1, 1], [2, 2]]))
        ]
        results = [
            await asyncio.to_thread(app.send_task, name, kwargs=kwargs, queue="work")
            for name, kwargs in sent
        ]
        assert [await r.aget(timeout=10) for r in results] == [[11, 12], [2, 4]]
    await hare.aclose()
