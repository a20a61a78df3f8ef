"""The `ResultBackend` protocol, and waiting for a result with a clock's timeout.

An app has one backend per event loop (`hare.results.Results` makes them): a backend's
connections and futures belong to the loop it was made on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from hare.clock import Clock
from hare.core.message import Message
from hare.errors import MalformedResult, ResultTimeout
from hare.results import celery_format
from hare.results.state import (
    FAILURE,
    SUCCESS,
    GroupRef,
    Ref,
    TaskResult,
)

__all__ = (
    "JOIN_TIMEOUT",
    "ResultBackend",
    "await_with_timeout",
    "encode_for_store",
    "group_index",
    "join_header",
    "settle",
)

logger = logging.getLogger("hare.results")

#: How long completing a chord waits for a header result it joins (Celery's default
#: `result_chord_join_timeout`).
JOIN_TIMEOUT = 3.0


class ResultBackend(Protocol):
    """Where an app's task results go and come from."""

    async def prepare(self) -> None:
        """Client side, before publishing a message that names `reply_to`: be ready for
        its result (rpc declares and consumes its reply queue; the others do nothing)."""
        ...

    async def store(self, result: TaskResult, request: Message | None) -> None:
        """Worker side: record `result` for the task `request` carried.

        rpc replies to `request.reply_to` (nothing without one); a reply queue that has
        gone does not make this fail.
        """
        ...

    async def get(self, task_id: str) -> TaskResult | None:
        """The latest known result of `task_id`; `None` when unknown (`PENDING`)."""
        ...

    async def wait(
        self,
        task_id: str,
        timeout: float | None,  # noqa: ASYNC109 - Celery's API
    ) -> TaskResult:
        """Wait until `task_id` is in a ready state; `ResultTimeout` after `timeout` s."""
        ...

    async def forget(self, task_id: str) -> None:
        """Drop what is known about `task_id`."""
        ...

    async def set_chord_size(self, group_id: str, size: int) -> None:
        """Record how many parts `group_id`'s chord header has, when the chord is applied
        (Celery's `set_chord_size`; a chord applied again with the same id starts anew)."""
        ...

    async def save_chord_header(self, header: GroupRef) -> None:
        """Save a chord's header, which has a group among its results, when the chord is
        applied (Celery's Redis `apply_chord`), so that `chord_part_done` returns its values
        in that shape."""
        ...

    async def chord_part_done(
        self, group_id: str, size: int | None, result: TaskResult
    ) -> list[TaskResult] | None:
        """Count one finished part of a chord header (ordered by `result.group_index`).

        `size` is the header's size when the part's message says it, else the one recorded
        by `set_chord_size`. Returns every part's result, in group-index order, to exactly one
        caller: the one whose part completed the header, across processes. That caller
        publishes the chord body, then calls `chord_complete`. A part counted twice (a
        redelivery) counts once. When the header was saved (`save_chord_header`), the
        results are those of the header's results instead (`join_header`).
        """
        ...

    async def chord_complete(self, group_id: str, *, failed: bool = False) -> None:
        """The body of `group_id`'s chord is published (or, `failed`, will not run): drop
        the chord's state for good; a failed chord's parts' results stay, as in Celery."""
        ...

    async def add_to_chord(self, group_id: str) -> None:
        """One more part for `group_id`'s chord header, added by a task of it while it runs
        (Celery's `add_to_chord`: the header completes one part later)."""
        ...

    async def aclose(self) -> None:
        """Close the backend's connections on this loop."""
        ...


async def await_with_timeout(
    future: asyncio.Future[TaskResult], seconds: float | None, clock: Clock, task_id: str
) -> TaskResult:
    """Wait for `future`, at most `seconds` on `clock`; `ResultTimeout` after that."""
    if seconds is None:
        return await future
    if seconds <= 0 and not future.done():
        raise ResultTimeout(task_id, seconds)
    sleeper: asyncio.Future[None] = asyncio.ensure_future(clock.sleep(seconds))
    waiting: set[asyncio.Future[Any]] = {future, sleeper}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
    if future.done():
        return future.result()
    raise ResultTimeout(task_id, seconds)


def settle(future: asyncio.Future[TaskResult], outcome: TaskResult | BaseException) -> None:
    """Complete a waiter's `future` from any thread (its loop may not be the caller's)."""

    def complete() -> None:
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    loop = future.get_loop()
    try:
        loop.call_soon_threadsafe(complete)
    except RuntimeError:  # its loop is closed: nobody waits any more
        pass


def encode_for_store(result: TaskResult, clock: Clock) -> bytes:
    """The body to store for `result`, dated now if ready and undated.

    A value JSON cannot carry is stored as a FAILURE (kombu's `EncodeError`, as Celery does),
    so a waiter learns of it instead of waiting forever.
    """
    now = datetime.fromtimestamp(clock.time(), UTC)
    try:
        return celery_format.dumps(result, now=now)
    except MalformedResult as problem:
        logger.warning("task %s: storing a FAILURE instead: %s", result.task_id, problem)
        return celery_format.dumps(celery_format.unencodable(result, problem), now=now)


async def join_header(header: GroupRef, backend: ResultBackend) -> list[TaskResult]:
    """Celery's join of a saved chord header (`GroupResult.join_native`), from the stored
    results: one per header result, in order; a group's value is the list of its members'
    values, or, when one did not succeed, that member's result. A result not stored yet is
    waited for `JOIN_TIMEOUT` seconds (Celery's `result_chord_join_timeout`), then failed
    with the timeout."""
    return [
        replace(await _joined(ref, backend), group_id=header.id, group_index=index)
        for index, ref in enumerate(header.results)
    ]


async def _joined(ref: Ref, backend: ResultBackend) -> TaskResult:
    if isinstance(ref, str):
        found = await backend.get(ref)
        if found is not None and found.ready:
            return found
        try:
            return await backend.wait(ref, JOIN_TIMEOUT)
        except ResultTimeout as exc:
            return TaskResult(task_id=ref, state=FAILURE, value=exc)
    values = []
    for member in ref.results:
        found = await _joined(member, backend)
        if found.state != SUCCESS:
            return found
        values.append(found.value)
    return TaskResult(task_id=ref.id, state=SUCCESS, value=values)


def group_index(result: TaskResult) -> int | None:
    """A chord part's position: `result.group_index`, or `extra["group_index"]`."""
    if result.group_index is not None:
        return result.group_index
    index = result.extra.get("group_index")
    if index is None:
        return None
    if not isinstance(index, int) or isinstance(index, bool):
        raise ValueError(f"a group index is an int, not {index!r}")
    return index
