"""`Task.add_to_chord(sig)` on hare's worker: the chord the task is a header part of waits
for `sig`'s result as one part more (Celery's, on the memory result backend)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hare.testing import running_worker
from hare_compat import Celery, group

pytestmark = pytest.mark.anyio


def make_app() -> tuple[Celery, dict[str, Any]]:
    app = Celery("atc", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"

    @app.task(name="atc.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="atc.tsum")
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    @app.task(name="atc.identity")
    def identity(x: Any) -> Any:
        return x

    @app.task(name="atc.each", bind=True)
    def each(self: Any, nums: list[int], val: int) -> int:
        for num in nums:
            self.add_to_chord(add.s(num, val))
        return 0

    @app.task(name="atc.a_chord", bind=True)
    def a_chord(self: Any, nums: list[int], val: int) -> int:
        self.add_to_chord(group([add.s(num, val) for num in nums]) | tsum.s())
        return 0

    @app.task(name="atc.alone", bind=True)
    def alone(self: Any) -> int:
        self.add_to_chord(add.s(1, 1))
        return 0

    return app, dict(identity=identity, each=each, a_chord=a_chord, alone=alone)


async def test_added_tasks_are_parts_of_the_chord() -> None:
    # One app for every case: a group built in a task without an app uses the current one.
    app, t = make_app()
    hare = app.__hare_app__()
    async with running_worker(hare):
        for task, expected in (("each", [0, 5, 6, 7]), ("a_chord", [0, 5 + 6 + 7])):
            workflow = group([t[task].s([1, 2, 3], 4)]) | t["identity"].s()
            result = await asyncio.to_thread(workflow.apply_async)
            assert sorted(await result.aget(timeout=10)) == expected
        result = await t["alone"].aapply_async()
        with pytest.raises(ValueError, match="not member of any chord"):
            await result.aget(timeout=10)
    await hare.aclose()
