"""A copy of a delivery whose task runs or ran in this worker is not run again.

Copies come from a connection cut (the broker redelivers what the worker held unsettled, often
while the first run goes on) and from a producer that publishes again a message whose confirm
it lost. Each copy is settled by the first run's outcome: acked after a success, and after a
retry or a dead letter that the first run's settlement already published; settled by the same
decision when it had not. A retry (`retries` + 1) and a replayed dead letter (`hare-replays`
+ 1) are new runs. On the memory transport with a manual clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from hare import Hare, Reject, Retry, Worker
from hare.context import current
from hare.core.headers import REPLAYS_HEADER
from hare.core.message import Message
from hare.core.outcome import Succeeded
from hare.core.retry import Ack
from hare.core.topology import DEAD_SUFFIX
from hare.publisher import Publisher
from hare.testing import Ledger, ManualClock, memory_app, until
from hare.transport.memory.transport import MemoryTransport
from hare.transport.reconnect import MAX_PAUSE
from hare.worker.runs import Runs, run_key
from tests.runtime import echo_app

pytestmark = pytest.mark.anyio

QUEUE = "work"


def _outcome_task(ledger: Ledger, release: asyncio.Event, outcome: str) -> Any:
    async def body(n: int) -> str:
        ledger.record(f"run-{n}")
        if n == 0:  # only the first attempt waits: the copy arrives while it runs
            await release.wait()
        if outcome == "retry" and n == 0:
            raise Retry(countdown=0)
        if outcome == "reject":
            raise Reject("no")
        return "ok"

    return body


@pytest.mark.parametrize("outcome", ["success", "retry", "reject"])
async def test_a_copy_delivered_while_the_task_runs_is_settled_by_its_outcome(
    outcome: str,
) -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue=QUEUE)
    ledger = Ledger()
    ledger.bind()
    release = asyncio.Event()
    body = _outcome_task(ledger, release, outcome)

    @app.task(name="t.work")
    async def work() -> str:
        context = current()
        assert context is not None
        result: str = await body(context.retries)
        return result

    transport = app.make_transport()
    assert isinstance(transport, MemoryTransport)
    worker = Worker(app, transport=transport)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    await work.adelay()
    await ledger.wait_for(1)
    await transport.sever()  # the delivery goes back to the queue, marked redelivered
    await clock.advance_by(MAX_PAUSE)
    await worker.wait_ready()
    broker = transport.broker
    # The copy arrived and waits for the first run; nothing runs twice.
    await until(lambda: broker.unsettled_count(QUEUE) == 1, clock)
    release.set()
    expected = {"success": ["run-0"], "retry": ["run-0", "run-1"], "reject": ["run-0"]}
    await ledger.wait_for(len(expected[outcome]))
    await until(
        lambda: broker.unsettled_count(QUEUE) == 0 and broker.message_count(QUEUE) == 0, clock
    )
    await clock.yield_control(20)
    worker.stop()
    await running
    assert [key for key, _ in ledger.runs] == expected[outcome]
    assert broker.message_count(QUEUE + DEAD_SUFFIX) == (1 if outcome == "reject" else 0)
    assert broker.message_count(QUEUE) == 0
    await app.aclose()


async def _send_twice(app: Hare, ledger: Ledger, change: dict[str, int]) -> MemoryTransport:
    """Send one message, wait until it ran, then send it again with `change` applied (a
    retry count, a replay count, or nothing: a producer whose confirm was lost)."""
    async with _worker(app) as transport:
        _, message = app.build_message("t.echo", (1,), {}, {"task_id": "same"})
        publisher = Publisher(transport, app.settings, app.clock)
        await publisher.send(QUEUE, message)
        await ledger.wait_for(1)
        retries = change.get("retries", 0)
        headers = {k: v for k, v in change.items() if k != "retries"}
        again = replace(message, retries=retries, headers={**message.headers, **headers})
        await publisher.send(QUEUE, again)
        broker = transport.broker
        clock = app.clock
        assert isinstance(clock, ManualClock)
        await until(lambda: broker.message_count(QUEUE) == 0, clock)
        await until(lambda: broker.unsettled_count(QUEUE) == 0 and len(ledger.runs) >= 1, clock)
        if change:
            await ledger.wait_for(2)
    return transport


async def test_a_copy_published_again_after_the_run_is_acked_not_run() -> None:
    app, ledger = echo_app(queue=QUEUE)
    await _send_twice(app, ledger, {})
    assert ledger.runs == [("echo", 1)]


@pytest.mark.parametrize(
    "change", [{"retries": 1}, {REPLAYS_HEADER: 1}], ids=["a retry", "a replayed dead letter"]
)
async def test_a_retry_or_a_replay_of_the_same_task_id_runs(change: dict[str, int]) -> None:
    app, ledger = echo_app(queue=QUEUE)
    await _send_twice(app, ledger, change)
    assert ledger.runs == [("echo", 1), ("echo", 1)]


def test_run_keys_and_the_bound_on_what_is_remembered() -> None:
    plain = run_key({"id": "a"})
    assert plain is not None and plain[:5] == ("a", "", 0, 0, 0)
    assert run_key({"id": "a"}) == plain  # a copy: the same key
    assert run_key({"id": "a", "task": "t", "retries": 2, REPLAYS_HEADER: 1})[:5] == (  # type: ignore[index]
        "a", "t", 2, 1, 0,
    )  # fmt: skip
    assert run_key({"id": "a", "task": "u", "replaced_task_nesting": 1})[:5] == (  # type: ignore[index]
        "a", "u", 0, 0, 1,
    )  # fmt: skip
    # The same id in another group, under another parent, or with other arguments: a new run.
    assert run_key({"id": "a", "group": "g"}) != plain
    assert run_key({"id": "a", "parent_id": "p"}) != plain
    assert run_key({"id": "a"}, b"[[1], {}, {}]") != run_key({"id": "a"}, b"[[2], {}, {}]")
    assert run_key({"id": ""}) is None
    assert run_key({"retries": 1}) is None
    assert run_key({"id": "a", "retries": True}) == plain

    runs = Runs(size=2)
    keys = [(f"t{n}", "t", 0, 0, 0, 0) for n in range(3)]
    for key in keys:
        run = runs.begin(key)
        assert runs.get(key) is run
        run.ran = True
        runs.end(run)
        assert run.is_over
    assert runs.get(keys[0]) is None  # the oldest is forgotten
    assert runs.get(keys[1]) is not None and runs.get(keys[2]) is not None
    never_ran = runs.begin(("x", "t", 0, 0, 0, 0))
    runs.end(never_ran)
    assert runs.get(("x", "t", 0, 0, 0, 0)) is None  # a delivery that ran nothing leaves no trace
    assert len(runs) == 2
    with pytest.raises(ValueError):
        Runs(size=-1)
    settled = Runs().begin(("s", "t", 0, 0, 0, 0))
    app = Hare("s", broker="memory://", environ={})
    task = app.task(name="t")(lambda: None)
    settled.ran_as(task, Message(id="s", task="t"), Succeeded(1), Ack())
    settled.mark_settled()  # a settled run keeps its key only, not its message or result
    assert settled.ran and settled.settled
    assert (settled.task, settled.message, settled.outcome, settled.decision) == (None,) * 4


class _worker:
    """A running worker of `app` on a memory transport of its own; yields the transport."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __aenter__(self) -> MemoryTransport:
        transport = self._app.make_transport()
        assert isinstance(transport, MemoryTransport)
        self._worker = Worker(self._app, transport=transport)
        self._running = asyncio.create_task(self._worker.run())
        await self._worker.wait_ready()
        self.transport = transport
        return transport

    async def __aexit__(self, *exc: object) -> None:
        self._worker.stop()
        await self._running
        await self._app.aclose()


async def test_the_same_id_sent_again_in_another_group_or_with_other_arguments_runs() -> None:
    app, ledger = echo_app(queue=QUEUE)
    async with _worker(app) as transport:
        _, message = app.build_message("t.echo", (1,), {}, {"task_id": "same"})
        publisher = Publisher(transport, app.settings, app.clock)
        await publisher.send(QUEUE, message)
        await ledger.wait_for(1)
        await publisher.send(QUEUE, replace(message, group="another-group"))
        await ledger.wait_for(2)
        await publisher.send(QUEUE, replace(message, args=(2,)))
        await ledger.wait_for(3)
    assert ledger.runs == [("echo", 1), ("echo", 1), ("echo", 2)]
