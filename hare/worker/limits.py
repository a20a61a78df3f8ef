"""Soft-then-hard time limits, waited out the same way however a task runs.

A run (on the loop, in a thread, in a process of its own) is a future; `within_limits` waits
on it. Past the soft limit it asks the run to stop (`at_soft`: the runner raises
`SoftTimeLimitExceeded` inside the task by whatever reaches it) and waits on; past the hard
limit it gives up, and the caller stops the run for good. A soft limit at or past the hard one
is ignored: the hard limit comes first. Both count on the worker's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hare.clock import Clock

__all__ = ("within_limits",)


async def within_limits(
    run: asyncio.Future[Any],
    *,
    soft: float | None,
    hard: float | None,
    clock: Clock,
    at_soft: Callable[[], object],
) -> bool:
    """Wait on `run` through its time limits; False once `hard` seconds passed first.

    `at_soft()` is called once when `run` is still going after `soft` seconds. True means
    `run` finished, or has no hard limit: the caller then awaits it as it would without limits.
    """
    waited = 0.0
    if soft is not None and (hard is None or soft < hard):
        if await _done_within(run, soft, clock):
            return True
        at_soft()
        waited = soft
    if hard is None:
        return True
    return await _done_within(run, hard - waited, clock)


async def _done_within(run: asyncio.Future[Any], seconds: float, clock: Clock) -> bool:
    """Wait up to `seconds` on the clock; whether `run` finished."""
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({run, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return run.done()
