"""Sync tasks in a process of their own: results, errors, limits, crashes.

A child process starts in real time; the limits are driven by a manual clock once the runner
has armed its timer (waited for with a bounded poll, never a fixed sleep).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from hare.core.outcome import Failed, Outcome, Succeeded
from hare.errors import ConfigurationError, TaskProcessDied
from hare.testing import ManualClock
from hare.worker.runner import TaskRunner
from tests.apps import isolated_app

pytestmark = pytest.mark.anyio


async def run(task: Any, *args: Any, clock: ManualClock | None = None, **limits: float) -> Outcome:
    runner = TaskRunner(2, clock or ManualClock())
    try:
        return await runner.run(task.fn, args, {}, is_async=False, isolated=True, **limits)
    finally:
        runner.shutdown()


async def started(marker: Path) -> None:
    """Wait (bounded) until the task in the child entered its try block."""
    async with asyncio.timeout(60):
        while not os.path.exists(marker):  # noqa: ASYNC110, ASYNC240 - set by a child process
            await asyncio.sleep(0.01)


async def armed(clock: ManualClock) -> None:
    """Wait (bounded) until the runner armed a timer: it does so once the child is ready."""
    async with asyncio.timeout(60):
        while clock.pending == 0:  # noqa: ASYNC110 - set on a child process's schedule
            await asyncio.sleep(0.01)


async def test_returns_the_value_from_another_process() -> None:
    assert await run(isolated_app.add, 2, 3) == Succeeded(5)
    outcome = await run(isolated_app.pid)
    assert isinstance(outcome, Succeeded) and outcome.value != os.getpid()


async def test_an_exception_comes_back_with_the_childs_traceback() -> None:
    outcome = await run(isolated_app.boom)
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.exception, ValueError)
    assert "kaboom in the child" in outcome.traceback
    assert "raised in the task's own process" in outcome.traceback


async def test_soft_limit_is_raised_inside_the_process(tmp_path: Path) -> None:
    clock = ManualClock()
    marker = tmp_path / "in-try"
    running = asyncio.ensure_future(
        run(isolated_app.crunch, str(marker), clock=clock, soft=5, hard=60)
    )
    await started(marker)
    await armed(clock)
    await clock.advance_by(5.1)
    assert await asyncio.wait_for(running, 60) == Succeeded("cleaned up")


async def test_hard_limit_kills_a_process_that_ignores_the_soft_limit(tmp_path: Path) -> None:
    clock = ManualClock()
    marker = tmp_path / "in-try"
    running = asyncio.ensure_future(
        run(isolated_app.stubborn, str(marker), clock=clock, soft=1, hard=3)
    )
    await started(marker)
    await armed(clock)
    marker.unlink()
    await clock.advance_by(1.1)  # the soft limit lands; the task swallows it
    await started(marker)
    await armed(clock)
    await clock.advance_by(2)
    outcome = await asyncio.wait_for(running, 60)
    assert isinstance(outcome, Failed)
    assert "its process was killed" in str(outcome.exception)


async def test_a_crash_fails_the_task_not_the_worker() -> None:
    outcome = await run(isolated_app.segfault)
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.exception, TaskProcessDied)
    assert "SIGSEGV" in str(outcome.exception)


def test_process_isolation_is_for_sync_tasks() -> None:
    with pytest.raises(ConfigurationError, match="is for sync functions"):

        @isolated_app.app.task(name="iso.async", isolation="process")
        async def nope() -> None: ...
