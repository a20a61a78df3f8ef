"""Chords through a hare worker on a real RabbitMQ, results in Redis: canvases from Celery's
own suite whose chords hare's worker got wrong, started by a hare_compat client.

* a chord in a chain in a chord header (the worker's planner linked a result to itself);
* a chain ending in a group in a chord header (its values must reach the body as one list);
* a failed header with a group body (its results fail with the task's own exception, and
  the errbacks linked to them run).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hare.core.topology import DEAD_SUFFIX
from hare.testing import eventually, running_worker
from hare_compat import Celery, chain, chord, group
from tests.amqp.helpers import delete_queues
from tests.results_fixtures import redis_url_or_skip

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

TIMEOUT = 30


class Expected(Exception):
    """What the failing task raises."""


class Workflows:
    """A hare_compat app on its own queue, its tasks, and what its errbacks recorded."""

    def __init__(self, amqp_url: str, redis_url: str, queue: str) -> None:
        self.queue = queue
        self.app = app = Celery("chords", broker=amqp_url, backend=redis_url, set_as_current=False)
        app.conf.task_default_queue = queue
        self.echoes: list[str] = []
        lock = threading.Lock()

        @app.task(name=f"{queue}.identity")
        def identity(x: Any) -> Any:
            return x

        @app.task(name=f"{queue}.add")
        def add(x: int, y: int) -> int:
            return x + y

        @app.task(name=f"{queue}.tsum")
        def tsum(xs: list[int]) -> int:
            return sum(xs)

        @app.task(name=f"{queue}.fail")
        def fail() -> None:
            raise Expected("expected to fail")

        @app.task(name=f"{queue}.echo")
        def echo(label: str, *rest: Any) -> None:
            with lock:
                self.echoes.append(label)

        self.identity, self.add, self.tsum, self.fail, self.echo = identity, add, tsum, fail, echo

    async def get(self, result: Any) -> Any:
        return await asyncio.to_thread(result.get, timeout=TIMEOUT)


@pytest.fixture
async def flows(amqp_url: str, unique: str) -> AsyncIterator[Workflows]:
    flows = Workflows(amqp_url, redis_url_or_skip(), f"chords-{unique}")
    hare = flows.app.__hare_app__()
    try:
        async with running_worker(hare, queues=[flows.queue]):
            yield flows
    finally:
        transport = (await hare.publisher()).transport
        await delete_queues(transport, flows.queue, flows.queue + DEAD_SUFFIX)
        await hare.aclose()


async def test_a_chord_in_a_chain_in_a_chord_header_completes(flows: Workflows) -> None:
    i = flows.identity
    workflow = chain(
        i.si(1),
        chord([i.si(2), chain(i.si(3), chord([i.si(4), i.si(5)], i.si(6)))], i.si(7)),
    )
    assert await flows.get(await asyncio.to_thread(workflow.apply_async)) == 7


async def test_a_chain_ending_in_a_group_gives_the_chord_body_a_list(flows: Workflows) -> None:
    i = flows.identity
    applied = chord(group(chain(i.s(42), group(i.s(), i.s()))), i.s())
    assert await flows.get(await asyncio.to_thread(applied.apply_async)) == [[42, 42]]
    # The worker applies this one, after the first step.
    continued = chain(i.si(42), chord([chain(i.s(), group(i.s(), i.s())), i.s()], i.s()))
    assert await flows.get(await asyncio.to_thread(continued.apply_async)) == [[42, 42], 42]


async def test_a_failed_header_fails_a_group_body_with_the_task_s_exception(
    flows: Workflows,
) -> None:
    add, fail = flows.add, flows.fail
    workflow = chain(group([add.si(15, 7), fail.si()]), group([add.si(9, 7), add.si(5, 7)]))
    with pytest.raises(Expected):
        await flows.get(await asyncio.to_thread(workflow.apply_async))


async def test_the_errbacks_of_a_chord_in_a_group_body_run_when_the_header_fails(
    flows: Workflows,
) -> None:
    add, tsum = flows.add, flows.tsum
    workflow = chord(
        [add.si(1, 1), flows.fail.si()], group(chord([add.si(2, 2)], tsum.s()), tsum.s())
    )
    result = await asyncio.to_thread(workflow.apply_async, link_error=flows.echo.si("chord"))
    with pytest.raises(Expected):
        await flows.get(result)
    await eventually(lambda: len(flows.echoes) >= 2, within=TIMEOUT)
    assert flows.echoes == ["chord", "chord"]
