"""`@app.task(pydantic=True)` as Celery 5.5 has it: model arguments validated on the worker,
a model result dumped to JSON, models given by the caller sent as JSON."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from hare.testing import running_worker
from hare_compat import Celery

pytestmark = pytest.mark.anyio


class Numbers(BaseModel):
    x: int
    y: int


class Total(BaseModel):
    total: int


def make_app() -> Celery:
    app = Celery("pyd", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.task_default_queue = "work"
    return app


async def test_model_arguments_are_validated_and_a_model_result_dumped() -> None:
    app = make_app()
    seen: list[Any] = []

    @app.task(name="pyd.add", pydantic=True)
    def add(data: Numbers, scale: int = 1) -> Total:
        seen.append(data)
        return Total(total=(data.x + data.y) * scale)

    @app.task(name="pyd.aadd", pydantic=True, bind=True)
    async def aadd(self: Any, data: Numbers | None = None) -> Total | None:
        seen.append(data)
        return None if data is None else Total(total=data.x + data.y)

    hare = app.__hare_app__()
    async with running_worker(hare):
        from_dict = await add.aapply_async(({"x": 1, "y": 2},), {"scale": 10})
        assert await from_dict.aget(timeout=10) == {"total": 30}
        from_model = await add.aapply_async((Numbers(x=2, y=3),))
        assert await from_model.aget(timeout=10) == {"total": 5}
        bound = await aadd.aapply_async(kwargs={"data": Numbers(x=4, y=4)})
        assert await bound.aget(timeout=10) == {"total": 8}
        nothing = await aadd.aapply_async()
        assert await nothing.aget(timeout=10) is None
    assert seen == [Numbers(x=1, y=2), Numbers(x=2, y=3), Numbers(x=4, y=4), None]
    await hare.aclose()


def test_the_caller_dumps_models_it_sends() -> None:
    app = make_app()

    @app.task(name="pyd.echo", pydantic=True)
    def echo(data: Numbers, other: Any = None) -> None: ...

    args, kwargs = echo._dump_pydantic_arguments((Numbers(x=1, y=2),), {"other": Numbers(x=0, y=0)})
    assert args == ({"x": 1, "y": 2},)
    assert kwargs == {"other": Numbers(x=0, y=0)}  # not annotated with a model: left as it is


def test_pydantic_options_without_pydantic_are_accepted_and_inert() -> None:
    app = make_app()

    @app.task(name="pyd.plain", pydantic_strict=True)
    def plain(data: Numbers) -> Any:
        return data

    assert plain._dump_pydantic_arguments is None
