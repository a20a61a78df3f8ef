"""Revocation and inspect against a running worker (memory transport)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest

from hare.app import Hare
from hare.control.client import Control
from hare.errors import TaskRevoked
from hare.task import Task
from hare.testing import Ledger, ManualClock, drain, memory_app, running_worker, until

pytestmark = pytest.mark.anyio


def _recording_app(clock: ManualClock) -> tuple[Hare, Ledger, Task[[int], Any]]:
    """An app on the memory broker whose `t.job(n)` records each run in the ledger."""
    app = memory_app(clock, default_queue="q", result_backend="memory://")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.job")
    async def job(n: int) -> int:
        ledger.record("job", n)
        return n

    return app, ledger, job


async def test_a_task_revoked_before_any_worker_started_never_runs() -> None:
    app, ledger, job = _recording_app(ManualClock())
    revoked = await job.adelay(1)
    transport = (await app.publisher()).transport
    await Control(transport, clock=app.clock).revoke(revoked.id)
    kept = await job.adelay(2)
    async with running_worker(app) as worker:
        assert await kept.aget(timeout=10) == 2
        await until(lambda: worker.in_flight == 0, app.clock)  # type: ignore[arg-type]
        with pytest.raises(TaskRevoked):
            await revoked.aget(timeout=10)
    assert ledger.runs == [("job", 2)]
    assert await drain(transport, "q.dead") == []


async def test_a_revoke_during_the_hold_before_an_eta_stops_the_task() -> None:
    clock = ManualClock()
    app, ledger, job = _recording_app(clock)
    async with running_worker(app) as worker:
        # 0.15 s ahead: under one ladder unit plus its lead, so it goes straight to the
        # worker, which holds it until due.
        held = await job.aapply_async((1,), countdown=0.15)
        kept = await job.aapply_async((2,), countdown=0.15)
        await until(lambda: worker.in_flight == 2, clock)
        transport = (await app.publisher()).transport
        await Control(transport, clock=clock).revoke(held.id)
        await clock.advance_by(0.2)
        assert await kept.aget(timeout=10) == 2
        await until(lambda: worker.in_flight == 0, clock)
        with pytest.raises(TaskRevoked):
            await held.aget(timeout=10)
        assert await drain(transport, "q.dead") == []
    assert ledger.runs == [("job", 2)]


async def test_inspect_sees_the_worker_and_its_running_task() -> None:
    # The worker's clock reads real time (frozen): it drops requests past their `expires`.
    app = memory_app(ManualClock(time.time()), default_queue="q")
    started = asyncio.Event()
    release = asyncio.Event()

    @app.task(name="t.wait")
    async def wait() -> None:
        started.set()
        await release.wait()

    async with running_worker(app) as worker:
        sent = await wait.adelay()
        await asyncio.wait_for(started.wait(), 10)
        # replies are collected for `timeout` seconds of the control's own (real) clock
        control = Control((await app.publisher()).transport)
        active = await control.inspect(timeout=0.5).active()
        registered = await control.inspect(timeout=0.5).registered()
        pong = await control.inspect(timeout=0.5).ping()
        release.set()
    assert active is not None
    assert [task["id"] for task in active[worker.nodename]] == [sent.id]
    assert registered == {worker.nodename: ["t.wait"]}
    assert pong == {worker.nodename: {"ok": "pong"}}


async def test_the_app_s_own_commands_are_answered_with_their_state_and_arguments() -> None:
    app = memory_app(ManualClock(time.time()), default_queue="q")
    seen: list[tuple[Any, str, dict[str, Any]]] = []

    @app.control_command
    def depth(state: Any, **arguments: Any) -> dict[str, Any]:
        seen.append((state.app, state.hostname, arguments))
        return {"queues": list(state.worker.queues())}

    async with running_worker(app) as worker:

        @app.control_command(name="late")  # registered after the worker started
        def registered_late(state: Any) -> str:
            return "here"

        control = Control((await app.publisher()).transport)
        replies = await control.broadcast("depth", {"n": 1}, reply=True, timeout=0.5)
        late = await control.broadcast("late", reply=True, timeout=0.5)
        broken = await control.broadcast("late", {"x": 1}, reply=True, timeout=0.5)
    assert replies == [{worker.nodename: {"queues": ["q"]}}]
    assert seen == [(app, worker.nodename, {"n": 1})]
    assert late == [{worker.nodename: "here"}]
    assert broken is not None and "error" in broken[0][worker.nodename]


async def test_inspect_scheduled_lists_what_the_worker_parked_in_the_ladder() -> None:
    # A producer that puts ETA tasks straight on the queue (a Celery client, here
    # delays="eta-header"): the worker sends an early one back to the delay ladder and
    # lists it as scheduled until it runs.
    clock = ManualClock(time.time())
    app = memory_app(clock, default_queue="q", delays="eta-header")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.later")
    async def later(n: int) -> None:
        ledger.record("later", n)

    async with running_worker(app) as worker:
        sent = await later.aapply_async((1,), countdown=30)
        control = Control((await app.publisher()).transport)
        await until(lambda: sent.id in worker._processor_of().parked, clock)
        scheduled = await control.inspect(timeout=0.5).scheduled()
        assert scheduled is not None
        [entry] = scheduled[worker.nodename]
        assert entry["request"]["id"] == sent.id and entry["request"]["args"] == [1]
        assert entry["request"]["time_start"] is None
        assert entry["request"]["worker_pid"] is None
        due = datetime.fromisoformat(entry["eta"]).timestamp()
        assert abs(due - (clock.time() + 30)) < 1
        await clock.advance_by(31)
        await ledger.wait_for(1)
        # (the worker's clock is now 31 s ahead of the control's: ask the view directly)
        assert worker._processor_of().parked == {}


@pytest.mark.parametrize("elsewhere", ["STARTED", "PROGRESS"])
async def test_a_revoke_records_revoked_for_tasks_no_one_started(elsewhere: str) -> None:
    """Celery 5.7's worker: a revoked task that nobody started is REVOKED in the result
    store once the worker replied; one another worker started keeps its state."""
    app = memory_app(ManualClock(time.time()), default_queue="q", result_backend="memory://")
    results = app.results
    assert results is not None
    async with running_worker(app) as worker:
        await results.astore_state("started", elsewhere, {"hostname": "other@host"})
        control = Control((await app.publisher()).transport)
        replies = await control.revoke(["started", "waiting"], reply=True, timeout=0.5)
        started = await results.alookup("started")
        waiting = await results.alookup("waiting")
    assert replies and worker.nodename in replies[0]
    assert started is not None and started.state == elsewhere
    assert waiting is not None and waiting.state == "REVOKED"
