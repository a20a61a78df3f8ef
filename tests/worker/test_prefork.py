"""The prefork pool on the memory transport: where calls run, how they end, how children are
replaced. (On RabbitMQ, with `hare worker --pool prefork`: tests/amqp/test_prefork_cli.py.)

The children are real processes on their own schedule: a test waits (bounded) for what a child
does — a marker file, the manual clock's armed timer — and never sleeps a fixed time. Time
limits run on the app's `ManualClock`, moved by the test once the child is inside the task.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hare.core.topology import DEAD_SUFFIX
from hare.errors import (
    ConfigurationError,
    RemoteError,
    TaskRevoked,
    TimeLimitExceeded,
    WorkerLostError,
)
from hare.testing import drain, running_worker
from hare.worker import Worker
from hare.worker.prefork.pool import ProcessPool
from tests.apps import prefork_app as tasks

pytestmark = pytest.mark.anyio

app, clock = tasks.app, tasks.clock


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    async with running_worker(app, concurrency=2, pool="prefork") as running:
        yield running


def pool_of(worker: Worker) -> ProcessPool:
    pool = worker._parts.runner.pool if worker._parts else None
    assert pool is not None
    return pool


async def result(sent: Any) -> Any:
    async with asyncio.timeout(60):
        return await sent.aget(timeout=None, propagate=False)


async def failure(sent: Any) -> BaseException:
    async with asyncio.timeout(60):
        try:
            await sent.aget(timeout=None)
        except Exception as exc:
            return exc
    raise AssertionError("the task succeeded")


async def appears(marker: Path) -> None:
    async with asyncio.timeout(60):
        while not marker.exists():  # noqa: ASYNC110, ASYNC240 - written by a child process
            await asyncio.sleep(0.01)


async def armed() -> None:
    """Until the pool armed its timer on the manual clock (the child is running the call)."""
    async with asyncio.timeout(60):
        while clock.pending == 0:  # noqa: ASYNC110 - armed on the pool's schedule
            await asyncio.sleep(0.01)


async def full(pool: ProcessPool, size: int) -> set[int]:
    """Until the pool has `size` live children; their pids."""
    async with asyncio.timeout(60):
        while len(pool.pids) != size:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return set(pool.pids)


async def dead_letter_of(sent: Any) -> Any:
    """The dead letter of the task `sent` sent (others' are drained too: the broker is
    shared by the module's tests)."""
    transport = app.make_transport()
    await transport.connect()
    try:
        letters = await drain(transport, app.settings.default_queue + DEAD_SUFFIX)
    finally:
        await transport.close()
    [letter] = [one for one in letters if one.properties.headers.get("id") == sent.id]
    return letter


async def test_sync_tasks_run_in_the_children(worker: Worker) -> None:
    pool = pool_of(worker)
    assert await result(await tasks.add.adelay(2, 3)) == 5
    child = await result(await tasks.pid.adelay())
    assert child in pool.pids and child != os.getpid()


async def test_middleware_runs_in_the_child_that_runs_the_task(
    worker: Worker, tmp_path: Path
) -> None:
    child = await result(await tasks.pid_noted.adelay(str(tmp_path)))
    assert child in pool_of(worker).pids
    assert (tmp_path / "before").read_text() == str(child)
    assert (tmp_path / "after").read_text() == f"{child} SUCCESS"


async def test_a_task_marked_thread_runs_in_the_worker_process(worker: Worker) -> None:
    assert await result(await tasks.pid_in_thread.adelay()) == os.getpid()


async def test_an_exception_comes_back_with_the_childs_traceback(worker: Worker) -> None:
    sent = await tasks.boom.adelay()
    exc = await failure(sent)
    assert isinstance(exc, ValueError) and "kaboom in the child" in str(exc)
    letter = await dead_letter_of(sent)
    assert "kaboom in the child" in str(letter.properties.headers)


async def test_an_exception_that_does_not_unpickle_keeps_its_name(worker: Worker) -> None:
    exc = await failure(await tasks.odd_error.adelay())
    assert isinstance(exc, RemoteError)
    assert exc.exc_type == "Unpicklable" and "1/2" in str(exc)


async def test_the_soft_limit_interrupts_a_blocking_call(worker: Worker, tmp_path: Path) -> None:
    marker = tmp_path / "in"
    sent = await tasks.nap.aapply_async(args=[str(marker)], soft_time_limit=5, time_limit=60)
    await appears(marker)
    await armed()
    await clock.advance_by(5.1)
    assert await result(sent) == "partial"


async def test_the_hard_limit_kills_the_child_and_the_pool_refills(
    worker: Worker, tmp_path: Path
) -> None:
    pool = pool_of(worker)
    before = set(pool.pids)
    marker = tmp_path / "in"
    sent = await tasks.stubborn.aapply_async(args=[str(marker)], soft_time_limit=1, time_limit=3)
    await appears(marker)
    await armed()
    marker.unlink()
    await clock.advance_by(1.1)  # the soft limit lands; the task swallows it and sleeps again
    await appears(marker)
    await armed()
    await clock.advance_by(2)
    exc = await failure(sent)
    assert isinstance(exc, TimeLimitExceeded) and "was killed" in str(exc)
    after = await full(pool, 2)
    assert len(after - before) == 1  # the killed child was replaced
    assert await result(await tasks.add.adelay(1, 1)) == 2


@pytest.mark.parametrize(
    ("send", "named"),
    [
        (lambda: tasks.exit_.adelay(1), "exitcode 1"),
        (lambda: tasks.kill.adelay(signal.SIGKILL), "signal 9 (SIGKILL)"),
        (lambda: tasks.segfault.adelay(), "signal 11 (SIGSEGV)"),
    ],
)
async def test_a_child_that_dies_fails_only_its_task(worker: Worker, send: Any, named: str) -> None:
    pool = pool_of(worker)
    sent = await send()
    exc = await failure(sent)
    assert isinstance(exc, WorkerLostError)
    assert f"Worker exited prematurely: {named}" in str(exc)
    letter = await dead_letter_of(sent)
    assert "WorkerLostError" in str(letter.properties.headers)
    await full(pool, 2)
    assert await result(await tasks.add.adelay(2, 2)) == 4


async def test_retry_on_worker_lost_runs_the_task_again(worker: Worker, tmp_path: Path) -> None:
    sent = await tasks.lost_retried.adelay(str(tmp_path / "died-once"))
    await appears(tmp_path / "died-once")
    async with asyncio.timeout(60):  # the retry waits its default delay in the ladder
        while clock.pending == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await clock.advance_by(200)
    assert await result(sent) == "second run"


async def test_reject_on_worker_lost_puts_the_message_back(worker: Worker, tmp_path: Path) -> None:
    sent = await tasks.lost_requeued.adelay(str(tmp_path / "died-once"))
    assert await result(sent) == "delivered again"


async def test_a_task_publishes_through_the_parent(worker: Worker) -> None:
    assert await result(await tasks.fan_out.adelay(3)) == 3
    # The three messages it sent were published by the worker process and ran.
    async with asyncio.timeout(60):
        while worker.processed < 4:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_max_tasks_per_child_replaces_children_between_tasks() -> None:
    async with running_worker(app, concurrency=1, pool="prefork", max_tasks_per_child=2) as w:
        pids = [await result(await tasks.pid.adelay()) for _ in range(4)]
        assert pids[0] == pids[1] != pids[2] == pids[3]
        assert pool_of(w).replaced >= 1


async def test_max_memory_per_child_refuses_a_runaway_allocation() -> None:
    limit_kib = 200 * 1024
    async with running_worker(
        app, concurrency=1, pool="prefork", max_memory_per_child=limit_kib
    ) as w:
        first = await result(await tasks.pid.adelay())
        exc = await failure(await tasks.hog.adelay(2048))
        assert isinstance(exc, MemoryError)
        assert await result(await tasks.hog.adelay(10)) == 10 * 1024 * 1024
        assert await result(await tasks.pid.adelay()) != first  # replaced after the MemoryError
        assert pool_of(w).replaced >= 1


async def test_a_threads_worker_runs_process_isolated_tasks_in_a_pool() -> None:
    @app.task(name="pf.isolated_pid", isolation="process")
    def isolated_pid() -> int:
        return os.getpid()

    try:
        async with running_worker(app, concurrency=1) as w:
            assert w.pool.kind == "threads"
            assert await result(await isolated_pid.adelay()) in pool_of(w).pids
            assert await result(await tasks.pid.adelay()) == os.getpid()
    finally:
        del app.tasks["pf.isolated_pid"]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
async def test_fresh_children_import_the_app(method: str) -> None:
    async with running_worker(app, concurrency=1, pool="prefork", pool_start_method=method) as w:
        assert await result(await tasks.add.adelay(20, 22)) == 42
        assert pool_of(w).pids


def test_pool_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="pool must be one of"):
        Worker(app, pool="gevent")
    with pytest.raises(ConfigurationError, match="start method"):
        Worker(app, pool="prefork", pool_start_method="vfork")
    with pytest.raises(ConfigurationError, match="max_tasks_per_child"):
        Worker(app, pool="prefork", max_tasks_per_child=0)
    with pytest.raises(ConfigurationError, match="solo pool runs one task"):
        Worker(app, pool="solo", concurrency=4)
    assert Worker(app, pool="solo").concurrency == 1
    assert Worker(app, pool="prefork").concurrency == len(os.sched_getaffinity(0))


def test_process_isolation_is_for_sync_tasks() -> None:
    with pytest.raises(ConfigurationError, match="is for sync functions"):

        @app.task(name="pf.async", isolation="process")
        async def nope() -> None: ...


async def test_inspect_stats_lists_the_children(worker: Worker) -> None:
    assert worker._parts is not None
    stats = worker._parts.control.worker.stats()
    assert stats["pool"]["implementation"] == "hare:prefork"
    assert stats["pool"]["processes"] == pool_of(worker).pids
    assert stats["pool"]["max-concurrency"] == 2


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
async def test_revoke_terminate_stops_the_task_in_its_child(
    worker: Worker, tmp_path: Path, signal_name: str
) -> None:
    marker = tmp_path / "in"
    sent = await tasks.wait_for_stop.adelay(str(marker))
    await appears(marker)
    assert worker._parts is not None
    assert worker._parts.processor.terminate(sent.id, signal_name)
    exc = await failure(sent)
    assert isinstance(exc, TaskRevoked)
    assert f"terminated ({signal_name})" in str(exc)
    assert await result(await tasks.add.adelay(1, 2)) == 3
