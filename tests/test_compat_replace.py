"""`Task.replace(sig)`: the replacement takes the task's id, callbacks, chain and chord, as in
Celery; on the memory broker with a hare worker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hare_compat import Celery, chain, group
from tests.runtime import running_worker

pytestmark = pytest.mark.anyio


def make_app() -> tuple[Celery, dict[str, Any]]:
    app = Celery("repl", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"
    tasks: dict[str, Any] = {}

    @app.task(name="repl.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="repl.nesting", bind=True)
    def nesting(self: Any) -> int:
        return int(self.request.replaced_task_nesting or 0)

    @app.task(name="repl.by_task", bind=True)
    def by_task(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 1))

    @app.task(name="repl.by_chain", bind=True)
    def by_chain(self: Any, x: int) -> Any:
        return self.replace(chain(add.s(x, 1), add.s(100)))

    @app.task(name="repl.by_group", bind=True)
    def by_group(self: Any, x: int) -> Any:
        return self.replace(group(add.s(x, 1), add.s(x, 2)))

    @app.task(name="repl.twice", bind=True)
    def twice(self: Any, depth: int) -> Any:
        if depth:
            return self.replace(twice.s(depth - 1))
        return self.replace(nesting.si())

    tasks.update(add=add, by_task=by_task, by_chain=by_chain, by_group=by_group, twice=twice)
    return app, tasks


async def test_a_replaced_task_s_id_gets_the_replacement_s_result() -> None:
    app, t = make_app()
    hare = app.__hare_app__()
    async with running_worker(hare):
        simple = await t["by_task"].aapply_async((1,))
        assert await simple.aget(timeout=10) == 2
        by_chain = await t["by_chain"].aapply_async((1,))
        assert await by_chain.aget(timeout=10) == 102
        by_group = await t["by_group"].aapply_async((1,))
        assert await by_group.aget(timeout=10) == [2, 3]
        # The chain the replaced task was in goes on after its replacement.
        rest = await asyncio.to_thread(chain(t["by_task"].s(1), t["add"].s(10)).apply_async)
        assert await rest.aget(timeout=10) == 12
        # Each replacement counts one more nesting level.
        nested = await t["twice"].aapply_async((2,))
        assert await nested.aget(timeout=10) == 3
    await hare.aclose()


def test_replacing_with_a_chord_member_or_an_empty_chain_is_refused() -> None:
    from hare_compat.exceptions import ImproperlyConfigured

    _, t = make_app()
    task = t["by_task"]
    with pytest.raises(ImproperlyConfigured, match="empty chain"):
        task.replace(chain())
    with pytest.raises(ImproperlyConfigured, match="part of a chord"):
        task.replace(t["add"].s(1, 1).set(chord=t["add"].s(0)))
