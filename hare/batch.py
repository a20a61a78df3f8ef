"""Sending many task messages at once: built first, then published pipelined on one channel.

`Hare.aenqueue_many` / `enqueue_many` take `Call`s (`hare.task`) and return one outcome
per call, in order: the `Sent` handle, or the exception that message met. Every message is
built and checked (options, size, the delay ladder's reach) before any is published; then up
to `window` are published at once on the publisher's connection, their confirms awaited
concurrently. One failure never stops the others: retry what failed by sending the calls at
the failed slots again. Through a lost connection each unconfirmed message is sent again
after the (one, shared) reconnect, as `send` does: a duplicate is possible, a loss is not.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from hare.core import protocol
from hare.core.envelope import Envelope, check_size
from hare.core.message import Message
from hare.errors import ConfigurationError
from hare.task import DEFAULT_WINDOW, Call, Sent

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.publisher import Publisher

__all__ = ("DEFAULT_WINDOW", "Outcome", "check_window", "enqueue_many", "send_many")

log = logging.getLogger("hare.batch")

#: What a batch returns for each call: its handle, or the exception that message met.
Outcome = Sent | Exception


def check_window(window: int) -> int:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ConfigurationError(f"window must be a positive integer, not {window!r}")
    return window


async def enqueue_many(
    app: Hare, publisher: Publisher, calls: Sequence[Call], window: int
) -> list[Outcome]:
    """`Hare.aenqueue_many` on `publisher`'s connection (see the module docstring)."""
    check_window(window)
    built: list[tuple[str, Message] | Exception] = []
    for call in calls:
        try:
            if not isinstance(call, Call):
                raise TypeError(f"enqueue_many takes Call values, not {type(call).__name__}")
            queue, message = app.build_message(call.task, call.args, call.kwargs, call.options)
            if app.results is not None:
                await app.results.prepare(message)  # rpc: the reply queue exists
            built.append((queue, message))
        except Exception as exc:
            built.append(exc)
    failures = await send_many(app, publisher, built, window)
    return [
        failure if failure is not None else _sent(app, item)
        for item, failure in zip(built, failures, strict=True)
    ]


def _sent(app: Hare, item: tuple[str, Message] | Exception) -> Outcome:
    assert not isinstance(item, Exception)  # its failure is reported instead
    queue, message = item
    return Sent(id=message.id, task=message.task, queue=queue, app=app)


async def send_many(
    app: Hare,
    publisher: Publisher,
    outgoing: Sequence[tuple[str, Message] | Exception],
    window: int = DEFAULT_WINDOW,
) -> list[Exception | None]:
    """Publish each `(queue, message)` pipelined, at most `window` unconfirmed at once; return,
    in order, `None` for each one confirmed and the exception for each one that failed (an
    exception given in `outgoing` stands for a message that could not be built)."""
    failures: list[Exception | None] = []
    ready: list[tuple[int, str, Message]] = []
    for index, item in enumerate(outgoing):  # every check before the first publish
        failure: Exception | None = item if isinstance(item, Exception) else None
        if not isinstance(item, Exception):
            try:
                queue, message = item
                message = publisher.announce(queue, message)
                publisher.check_delay(queue, message)
                _check_size(app, queue, message)
                ready.append((index, queue, message))
            except Exception as exc:
                failure = exc
        failures.append(failure)

    async def one(index: int, queue: str, message: Message) -> None:
        try:
            await publisher.deliver(queue, message)
        except Exception as exc:
            failures[index] = exc
            return
        try:
            publisher.announce_sent(queue, message)
        except Exception:  # sent and confirmed: reporting it failed would have it sent twice
            log.exception("after_publish of message %s to %r failed", message.id, queue)

    await _in_window([functools.partial(one, *entry) for entry in ready], window)
    return failures


async def _in_window(jobs: Sequence[Callable[[], Coroutine[Any, Any, None]]], window: int) -> None:
    """Run `jobs`, at most `window` at once, refilled in bursts: once half the window is done,
    the other half starts in one loop turn, so aiormq writes their publishes together
    (refilling one slot per confirm, a publish at a time, measured 15-25 % slower)."""
    running, low = 0, window // 2
    room = asyncio.Event()

    def finished(_: object) -> None:
        nonlocal running
        running -= 1
        if running <= low:
            room.set()

    async with asyncio.TaskGroup() as group:
        for job in jobs:
            if running >= window:
                room.clear()
                await room.wait()
            running += 1
            group.create_task(job()).add_done_callback(finished)


def _check_size(app: Hare, queue: str, message: Message) -> None:
    """Raise `MessageTooLarge` now for a message over `max_message_size` (the transport would
    at its publish; a batch says so before its first)."""
    body, properties = protocol.encode(message, now=app.clock.time())
    envelope = Envelope(exchange="", routing_key=queue, body=body, properties=properties)
    check_size(envelope, app.settings.max_message_size)
