"""`Task.replace(sig)`: the replacement takes the task's id, callbacks, chain and chord, as in
Celery; on the memory broker with a hare worker."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from hare.results.handle import AsyncResult
from hare.testing import running_worker
from hare_compat import Celery, chain, group
from hare_compat.signals import task_received
from tests.runtime import STAMP_HEADERS

pytestmark = pytest.mark.anyio


def make_app() -> tuple[Celery, dict[str, Any]]:
    app = Celery("repl", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"
    tasks: dict[str, Any] = {}
    # Not shared (Celery's default): each test's app has its own tasks, not the first app's.
    task = functools.partial(app.task, shared=False)

    @task(name="repl.add")
    def add(x: int, y: int) -> int:
        return x + y

    @task(name="repl.nesting", bind=True)
    def nesting(self: Any) -> int:
        return int(self.request.replaced_task_nesting or 0)

    @task(name="repl.by_task", bind=True)
    def by_task(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 1))

    @task(name="repl.by_chain", bind=True)
    def by_chain(self: Any, x: int) -> Any:
        return self.replace(chain(add.s(x, 1), add.s(100)))

    @task(name="repl.by_group", bind=True)
    def by_group(self: Any, x: int) -> Any:
        return self.replace(group(add.s(x, 1), add.s(x, 2)))

    @task(name="repl.stamps", bind=True)
    def stamps(self: Any) -> Any:
        return [self.request.stamped_headers, self.request.stamps]

    @task(name="repl.twice", bind=True)
    def twice(self: Any, depth: int) -> Any:
        if depth:
            return self.replace(twice.s(depth - 1))
        return self.replace(nesting.si())

    tasks.update(add=add, by_task=by_task, by_chain=by_chain, by_group=by_group, twice=twice)
    tasks.update(stamps=stamps)
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


async def test_task_received_and_the_request_show_the_nesting_level_and_the_stamps() -> None:
    """What Celery's suite reads in `task_received` (test_replaced_task_nesting_*): each
    replacement's request counts one more level; a stamped message's request has its stamps."""
    app, t = make_app()
    hare = app.__hare_app__()
    received: list[tuple[str, int]] = []

    def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
        received.append((request.name, request.replaced_task_nesting))

    task_received.connect(on_received)
    try:
        async with running_worker(hare):
            nested = await t["twice"].aapply_async((2,))
            assert await nested.aget(timeout=10) == 3
            plain = await t["stamps"].aapply_async()
            assert await plain.aget(timeout=10) == [None, {}]
            # (hare_compat's client does not stamp: the message is sent as Celery's client
            # sends a stamped one)
            stamped = await hare.asend_task("repl.stamps", headers=STAMP_HEADERS)
            value = await AsyncResult(stamped.id, hare).aget(timeout=10)
            assert value == [["mtask_id"], {"mtask_id": "1234"}]
    finally:
        task_received.disconnect(on_received)
        await hare.aclose()
    assert received[:4] == [
        ("repl.twice", 0),
        ("repl.twice", 1),
        ("repl.twice", 2),
        ("repl.nesting", 3),
    ]


def test_replacing_with_a_chord_member_or_an_empty_chain_is_refused() -> None:
    from hare_compat.exceptions import ImproperlyConfigured

    _, t = make_app()
    task = t["by_task"]
    with pytest.raises(ImproperlyConfigured, match="empty chain"):
        task.replace(chain())
    with pytest.raises(ImproperlyConfigured, match="part of a chord"):
        task.replace(t["add"].s(1, 1).set(chord=t["add"].s(0)))
