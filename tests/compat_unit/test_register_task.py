"""`app.register_task` takes a Task instance or, as `celery.contrib.pytest` passes them, a Task
subclass, which it instantiates as Celery does; the worker then serves it."""

from __future__ import annotations

from typing import Any

import pytest

from hare.testing import running_worker
from hare_compat import Celery, Task

pytestmark = pytest.mark.anyio


class Multiply(Task):
    name = "reg.multiply"

    def run(self, x: int, y: int) -> int:
        return x * y


class Unnamed(Task):
    def run(self) -> str:
        return "ok"


@pytest.mark.parametrize("given", ["class", "instance"])
async def test_register_task_takes_a_class_or_an_instance_and_the_worker_serves_it(
    given: str,
) -> None:
    app = Celery("reg", broker="memory://", backend="memory://", set_as_current=False)
    registered: Any = app.register_task(Multiply if given == "class" else Multiply())
    assert isinstance(registered, Multiply)
    assert app.tasks["reg.multiply"] is registered
    unnamed = app.register_task(Unnamed)
    assert unnamed.name == f"{__name__}.Unnamed"
    hare = app.__hare_app__()  # what `hare worker` serves: every task bound
    async with running_worker(hare):
        result = await registered.aapply_async((6, 7))
        assert await result.aget(timeout=10) == 42
    await hare.aclose()
