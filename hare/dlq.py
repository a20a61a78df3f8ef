"""Dead letters: browse, replay and purge `<queue>.dead` without holding it in memory.

A browse (`hare.browsing`) takes every message of the queue unsettled and hands back, in
order, what it does not ack, so it changes neither content nor order. A replay acks a dead
letter only once the broker has confirmed its republished copy. Nothing here prints;
`hare.cli.dlq` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, replace

from hare.app import Hare
from hare.browsing import Browser, Progress, browsing
from hare.core import ladder
from hare.core.codec import accepted_content_types
from hare.core.deadletter import DeadLetterDetail as DeadLetterDetail
from hare.core.deadletter import DeadLetterRow as DeadLetterRow
from hare.core.deadletter import Selector as Selector
from hare.core.deadletter import dead_at, read_detail, read_row, replay_headers, replay_message
from hare.core.deadletter import dead_queue_name as dead_queue_name
from hare.core.deadletter import work_queue_name as work_queue_name
from hare.core.envelope import Delivery, Envelope
from hare.core.message import Message
from hare.errors import ConfigurationError, HareError
from hare.publisher import Publisher

__all__ = (
    "DeadLetterDetail",
    "DeadLetterRow",
    "Progress",
    "PurgeSummary",
    "ReplaySummary",
    "Selector",
    "dead_queue_name",
    "find",
    "list_dead_letters",
    "purge",
    "replay",
    "work_queue_name",
)

#: Publishes awaiting their confirm at once in a replay (one at a time is a round trip each).
_REPLAY_WINDOW = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySummary:
    """What a replay did; every selected dead letter not replayed is still in its queue."""

    examined: int
    replayed: int
    expired: int  # selected, but past their `expires`: a worker would discard them unrun
    missing: frozenset[str]  # ids asked for and not found
    error: HareError | None  # what stopped the replay


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeSummary:
    """What a purge did: dead letters dropped, and those left in place."""

    purged: int
    kept: int


async def _rows(
    app: Hare, queue: str, progress: Progress | None
) -> AsyncGenerator[tuple[DeadLetterRow, Delivery]]:
    accept = accepted_content_types(app.settings.accept_content)
    async with (
        browsing(app.make_transport()) as browser,
        aclosing(browser.take(dead_queue_name(queue), progress)) as browse,
    ):
        async for position, delivery in browse:
            yield read_row(position, delivery, accept), delivery


async def list_dead_letters(
    app: Hare, queue: str, *, progress: Progress | None = None
) -> AsyncGenerator[DeadLetterRow]:
    """Yield a row for each dead letter of `queue`, leaving every one in place.

    Close it with `contextlib.aclosing` when stopping early. Raises `DeadLetterQueueNotFound`.
    """
    async with aclosing(_rows(app, queue, progress)) as rows:
        async for row, _ in rows:
            yield row


async def find(app: Hare, queue: str, name: str) -> DeadLetterDetail | None:
    """The first dead letter of `queue` that `name` identifies (`DeadLetterRow.is_named`)."""
    found = None
    async with aclosing(_rows(app, queue, None)) as rows:
        async for row, delivery in rows:
            if row.is_named(name):
                found = row, delivery
                break
    if found is None:
        return None
    row, delivery = found
    return read_detail(row, delivery, accepted_content_types(app.settings.accept_content))


async def replay(
    app: Hare,
    queue: str,
    selector: Selector,
    *,
    countdown: float | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Send the selected dead letters of `queue` back to their work queue as fresh tasks.

    Each is rebuilt without its dead-letter headers, with `retries` 0 and `hare-replays` one
    up, published (through the delay ladder with `countdown`), confirmed, and only then acked.
    A failure stops the replay; whatever was not replayed stays in place.
    """
    if countdown is not None and not 0 <= countdown <= ladder.MAX_DELAY_SECONDS:
        raise ConfigurationError(f"countdown must be 0 to {ladder.MAX_DELAY_SECONDS:.0f}s")
    dead_queue = dead_queue_name(queue)
    async with browsing(app.make_transport()) as browser:
        await browser.count(dead_queue)  # a missing queue raises here, not in the tasks
        run = _Replay(app, browser, selector, countdown)
        await run.over(browser.take(dead_queue, progress))
    return run.summary()


class _Replay:
    """One replay's state: what was examined, replayed or left, and the first failure."""

    def __init__(
        self, app: Hare, browser: Browser, selector: Selector, countdown: float | None
    ) -> None:
        self.app, self.browser, self.selector, self.countdown = app, browser, selector, countdown
        self.publisher = Publisher(browser.transport, app.settings, app.clock, app.middleware)
        self.accept = accepted_content_types(app.settings.accept_content)
        self.wanted = set(selector.ids)
        self.examined = self.expired = self.replayed = 0
        self.failures: list[HareError] = []
        self.window = asyncio.Semaphore(_REPLAY_WINDOW)

    async def over(self, browse: AsyncGenerator[tuple[int, Delivery], None]) -> None:
        """Replay the selected deliveries of `browse`, up to `_REPLAY_WINDOW` at a time."""
        async with aclosing(browse), asyncio.TaskGroup() as group:
            try:
                async for position, delivery in browse:
                    self.examined = position
                    target = self._select(position, delivery)
                    if target is None:
                        continue
                    message = replay_message(
                        delivery, self.accept, self.countdown, self.app.clock.time()
                    )
                    if message is not None and message.expires is not None:
                        if message.expires.timestamp() <= self.app.clock.time():
                            self.expired += 1  # a worker would discard it unrun: leave it here
                            continue
                    await self.window.acquire()
                    if self.failures:
                        break
                    group.create_task(self._send(delivery, target, message))
            except HareError as exc:  # e.g. the connection is gone: stop, report what was done
                self.failures.append(exc)

    def _select(self, position: int, delivery: Delivery) -> str | None:
        """The work queue to replay `delivery` to, or None when the selector leaves it."""
        row = read_row(position, delivery, self.accept)
        if not self.selector.matches(row):
            return None
        self.wanted.difference_update((row.id, row.correlation_id, f"#{position}"))
        return row.queue

    async def _send(self, delivery: Delivery, target: str, message: Message | None) -> None:
        try:
            if message is None:
                await _republish_raw(self.publisher, delivery, target, self.countdown)
            else:
                await self.publisher.send(target, message)
            await self.browser.ack(delivery)
            self.replayed += 1
        except HareError as exc:  # left unsettled: it is handed back
            self.failures.append(exc)
        finally:
            self.window.release()

    def summary(self) -> ReplaySummary:
        return ReplaySummary(
            examined=self.examined,
            replayed=self.replayed,
            expired=self.expired,
            missing=frozenset(self.wanted),
            error=self.failures[0] if self.failures else None,
        )


async def _republish_raw(
    publisher: Publisher, delivery: Delivery, target: str, countdown: float | None
) -> None:
    """Publish a body that cannot be decoded as it is, minus the dead-letter headers."""
    properties = replace(delivery.properties, headers=replay_headers(delivery.properties.headers))
    route = None if countdown is None else ladder.route(countdown, target)
    if route is None:
        await publisher.ensure_queue(target)
    else:
        await publisher.ensure_delay_target(target)
    exchange, routing_key = ("", target) if route is None else (route.exchange, route.routing_key)
    envelope = Envelope(
        exchange=exchange, routing_key=routing_key, body=delivery.body, properties=properties
    )
    await publisher.transport.publish(envelope)


async def purge(
    app: Hare, queue: str, *, older_than: float | None = None, progress: Progress | None = None
) -> PurgeSummary:
    """Drop the dead letters of `queue`, or with `older_than` (seconds) only those dead longer.

    A dead letter with no time of death is kept.
    """
    dead_queue, purged, kept = dead_queue_name(queue), 0, 0
    async with browsing(app.make_transport()) as browser:
        if older_than is None:
            await browser.count(dead_queue)  # DeadLetterQueueNotFound rather than a bare 404
            return PurgeSummary(purged=await browser.transport.purge(dead_queue), kept=0)
        cutoff = app.clock.time() - older_than
        async with aclosing(browser.take(dead_queue, progress)) as browse:
            async for _, delivery in browse:
                died = dead_at(delivery.properties.headers)
                if died is not None and died.timestamp() < cutoff:
                    await browser.ack(delivery)
                    purged += 1
                else:
                    kept += 1
    return PurgeSummary(purged=purged, kept=kept)
