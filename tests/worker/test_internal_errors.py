"""A failure inside hare at any stage of handling a delivery settles it; nothing stays unacked.

The first failure requeues the delivery; a second for the same run dead-letters it with reason
`internal-error` and the traceback. A task that ran before hare failed is not run again: its
copy is settled by the run's outcome. On the memory transport with a manual clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from hare import Worker
from hare.core import protocol
from hare.core.topology import DEAD_SUFFIX
from hare.testing import Ledger, ManualClock, memory_app, until
from hare.transport.memory.transport import MemoryTransport
from hare.worker.delivery import Processor
from hare.worker.recording import Recorder
from hare.worker.settlement import Settlement

pytestmark = [pytest.mark.anyio, pytest.mark.pure_python]

QUEUE = "work"
TASKS = 3


class Boom(RuntimeError):
    """A bug inside hare, injected."""


#: Where a failure is injected: (object, attribute) and whether the task has run by then.
STAGES: dict[str, tuple[Any, str, bool]] = {
    "decode": (protocol, "decode", False),
    "before run": (Processor, "_execute", False),
    "after run": (Recorder, "record", True),
    "during settle": (Settlement, "settle", True),
}


def _inject(monkeypatch: pytest.MonkeyPatch, stage: str, fails: Callable[[], bool]) -> None:
    owner, name, _ = STAGES[stage]
    original = getattr(owner, name)

    if stage == "decode":

        def failing_sync(*args: Any, **kwargs: Any) -> Any:
            if fails():
                raise Boom(f"injected in {stage}")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, failing_sync)
        return

    async def failing(*args: Any, **kwargs: Any) -> Any:
        if fails():
            raise Boom(f"injected in {stage}")
        return await original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


async def _run(
    monkeypatch: pytest.MonkeyPatch, stage: str, fails: Callable[[], bool]
) -> tuple[Ledger, int, list[dict[str, Any]]]:
    """Send TASKS tasks through a worker with the fault injected; return the ledger, what is
    left in the work queue (ready + unsettled) and the dead letters' headers."""
    clock = ManualClock()
    app = memory_app(clock, default_queue=QUEUE)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.echo")
    async def echo(n: int) -> None:
        ledger.record(f"echo-{n}")

    _inject(monkeypatch, stage, fails)
    transport = app.make_transport()
    assert isinstance(transport, MemoryTransport)
    worker = Worker(app, transport=transport)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    for n in range(TASKS):
        await echo.adelay(n)
    broker = transport.broker

    def settled() -> bool:
        return broker.message_count(QUEUE) == 0 and broker.unsettled_count(QUEUE) == 0

    await until(settled, clock, rounds=2000)
    dead: list[dict[str, Any]] = []
    while (delivery := await transport.get(QUEUE + DEAD_SUFFIX)) is not None:
        await transport.ack(delivery)
        dead.append(dict(delivery.properties.headers))
    left = broker.message_count(QUEUE) + broker.unsettled_count(QUEUE)
    worker.stop()
    await running
    await app.aclose()
    return ledger, left, dead


@pytest.mark.parametrize("stage", list(STAGES))
async def test_a_failure_once_requeues_and_the_task_runs_exactly_once(
    monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    calls = iter(range(1_000_000))

    def fails() -> bool:
        # The first TASKS calls fail: with the tasks published before any is handled, that
        # is the first call for each of them.
        return next(calls) < TASKS

    ledger, left, dead = await _run(monkeypatch, stage, fails)
    assert left == 0
    assert dead == []
    assert sorted(ledger.counts().items()) == [(f"echo-{n}", 1) for n in range(TASKS)]


@pytest.mark.parametrize("stage", list(STAGES))
async def test_a_failure_that_persists_dead_letters_with_the_reason_and_traceback(
    monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    ledger, left, dead = await _run(monkeypatch, stage, lambda: True)
    _, _, ran = STAGES[stage]
    assert left == 0
    assert len(dead) == TASKS
    for headers in dead:
        assert headers["hare-dead-reason"] == "internal-error", headers
        assert "Boom: injected in " + stage in headers["hare-dead-detail"]
        assert "Boom" in json.dumps(headers.get("hare-dead-traceback", ""))
    # Where the task had run before hare failed, it ran once, not once per attempt.
    expected = [(f"echo-{n}", 1) for n in range(TASKS)] if ran else []
    assert sorted(ledger.counts().items()) == expected
