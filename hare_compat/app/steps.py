"""Running a traced call's steps: `drive` for a sync task, `adrive` for an async one.

A traced call (`hare_compat.app.trace.Tracer.steps`) is a generator that yields whatever
must be awaited; the drivers run it to its return value.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

__all__ = ("Steps", "adrive", "drive")

#: A traced call: yields what must be awaited, is sent its result, returns the call's.
Steps = Generator[Any, Any, Any]


def drive(steps: Steps) -> Any:
    """Run a tracer's steps for a sync task; anything awaitable is an error in the task."""
    throw: BaseException | None = None
    while True:
        try:
            step = steps.send(None) if throw is None else steps.throw(throw)
        except StopIteration as stop:
            return stop.value
        if inspect.iscoroutine(step):
            step.close()
        throw = TypeError(
            f"{step!r} was returned where a value was expected: a sync task cannot await; "
            "make the task (and its handlers) all `async def` or all plain `def`"
        )


async def adrive(steps: Steps) -> Any:
    """Run a tracer's steps for an async task, awaiting what it yields."""
    value: Any = None
    throw: BaseException | None = None
    while True:
        try:
            step = steps.send(value) if throw is None else steps.throw(throw)
        except StopIteration as stop:
            return stop.value
        value, throw = None, None
        try:
            value = await step
        except BaseException as exc:  # into the generator: it decides (and re-raises)
            throw = exc
