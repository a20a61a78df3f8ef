"""Publishing task messages on one transport: declare the target once, encode, confirm."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from hare import signals
from hare.clock import Clock
from hare.core import ladder, protocol
from hare.core.envelope import Envelope
from hare.core.headers import ETA_HEADER
from hare.core.message import Message
from hare.core.priority import band_queue
from hare.core.settings import Settings
from hare.core.topology import Queue, dead_letter_queue, work_queue
from hare.errors import (
    BrokerNotReady,
    BrokerTLSError,
    BrokerUnavailable,
    NotFound,
    TopologyMismatch,
)
from hare.middleware import Middlewares
from hare.transport.base import Transport
from hare.transport.reconnect import backoff_delay, reconnect

#: The header carrying a message's due time in epoch milliseconds (the ISO `eta` header says
#: the same for Celery; this one is cheaper to read and exact).

__all__ = ("Publisher",)


class Publisher:
    """Sends task messages to work queues through one transport.

    The first publish to a queue declares it (and its dead-letter queue), as Celery's producer
    does, so a message published before any worker started is kept rather than returned as
    unroutable. Every publish waits for the broker's confirm.
    """

    def __init__(
        self,
        transport: Transport,
        settings: Settings,
        clock: Clock,
        middleware: Middlewares | None = None,
    ) -> None:
        self.transport = transport
        #: The app's middleware, whose `before_publish` / `after_publish` hooks `send` calls.
        self.middleware = middleware if middleware is not None else Middlewares()
        self._settings = settings
        self._clock = clock
        # Declarations made through this publisher's connection, by key ("queue:<name>",
        # "ladder", "target:<name>"), and those in progress: concurrent first publishes to
        # a queue share one declaration instead of each repeating it.
        self._done: set[str] = set()
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._rng = random.Random()
        self._through_ladder = settings.delays == "ladder"
        self._bands = settings.bands
        self._reconnecting: asyncio.Task[None] | None = None

    async def _once(self, key: str, declare: Callable[[], Awaitable[None]]) -> None:
        if key in self._done:
            return
        pending = self._pending.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            await declare()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no concurrent caller may be waiting on it
            raise
        else:
            self._done.add(key)
            future.set_result(None)
        finally:
            del self._pending[key]

    async def declare_once(self, key: str, declare: Callable[[], Awaitable[None]]) -> None:
        """Run `declare` once per connection of this publisher (concurrent callers share it;
        a reconnect or `forget_declarations` makes the next call run it again)."""
        await self._once(key, declare)

    async def ensure_queue(self, queue: str) -> None:
        """Make sure `queue` and `<queue>.dead` exist, once per publisher.

        A queue that exists is used as it is, whoever declared it and with whatever arguments
        (a Celery worker declares its queues classic, without arguments; an older hare declared
        every `<queue>.dead` classic): each is checked passively and declared, with hare's
        arguments, only when it is missing. A worker's start says how they differ
        (`adopt_queue`).
        """

        async def declare() -> None:
            await self._declare_if_missing(self._work_queue(queue))
            await self._declare_if_missing(self._dead_letter_queue(queue))

        await self._once("queue:" + queue, declare)

    async def adopt_queue(self, queue: str) -> str | None:
        """Make sure `queue` exists (as `ensure_queue`); say how it differs from hare's own.

        Returns `None` when the queue is declared as hare would declare it, else the broker's
        words for the first difference (a worker consuming a queue Celery declared). The check
        is an active declare with hare's arguments that the broker refuses (406) when they
        differ: its channel is closed and opened again, which is why only a worker's start
        does it, never a publish.
        """
        await self.ensure_queue(queue)
        return await self._difference(self._work_queue(queue))

    async def dead_letter_difference(self, queue: str) -> str | None:
        """How `<queue>.dead` differs from hare's declaration of it (`None`: it does not);
        like `adopt_queue`, for a worker's start only."""
        await self.ensure_queue(queue)
        return await self._difference(self._dead_letter_queue(queue))

    async def _difference(self, declaration: Queue) -> str | None:
        try:
            await self.transport.declare_queue(declaration)
        except TopologyMismatch as exc:
            return str(exc)
        return None

    def _work_queue(self, queue: str) -> Queue:
        settings = self._settings
        return work_queue(
            queue,
            settings.queue_type,
            delivery_limit=settings.delivery_limit,
            max_priority=settings.queue_max_priority,
        )

    def _dead_letter_queue(self, queue: str) -> Queue:
        return dead_letter_queue(queue, self._settings.queue_type)

    async def _declare_if_missing(self, declaration: Queue) -> None:
        if await self._exists(declaration.name):
            return
        try:
            await self.transport.declare_queue(declaration)
        except TopologyMismatch:
            # Declared by someone else, with other arguments, since the check: use it.
            if not await self._exists(declaration.name):
                raise

    async def _exists(self, queue: str) -> bool:
        try:
            await self.transport.message_count(queue)  # a passive declare
        except NotFound:
            return False
        return True

    async def ensure_ladder(self) -> None:
        """Declare the delay ladder (idempotent on the broker; once per publisher here)."""

        async def declare() -> None:
            exchanges, queues, bindings = ladder.ladder_topology()
            for exchange in exchanges:
                await self.transport.declare_exchange(exchange)
            for ladder_queue in queues:
                await self.transport.declare_queue(ladder_queue)
            for binding in bindings:
                await self.transport.bind(binding)

        await self._once("ladder", declare)

    async def ensure_delay_target(self, queue: str) -> None:
        """Make sure delayed messages for `queue` can leave the ladder into it.

        The producer binds as well as the worker: a delayed message for a queue that no worker
        has declared yet must still arrive (NServiceBus #367 lost such messages).
        """

        async def declare() -> None:
            await self.ensure_ladder()
            await self.ensure_queue(queue)
            await self.transport.bind(ladder.destination_binding(queue))

        await self._once("target:" + queue, declare)

    def forget_declarations(self) -> None:
        """Declare again on next use (after a reconnect, or after queues were deleted)."""
        self._done.clear()

    async def send(
        self,
        queue: str,
        message: Message,
        *,
        via_ladder: bool | None = None,
        guard: Callable[[], None] | None = None,
    ) -> None:
        """Publish `message` to `queue` and wait until the broker confirmed it.

        A message with an `eta` at least one ladder unit ahead travels through the delay
        ladder; the broker holds it until it is due. Raises `DelayTooLong` beyond the ladder's
        reach, before anything is published.

        Through a lost connection it reconnects and publishes again, for up to
        `publish_timeout` seconds, then raises `BrokerUnavailable`. A publish that was sent but
        not confirmed when the connection died is sent again: a duplicate is possible, a loss
        is not.

        `via_ladder` overrides the `delays` setting for this message: a worker sending back a
        message that came early, or a retry, parks it in the ladder, or it would spin on it.

        `guard` is called before each attempt; what it raises ends the send unsent (the
        periodic scheduler's "do I still lead?", which a reconnect answers with no).
        """
        message = self.announce(queue, message)
        self.check_delay(queue, message, via_ladder)
        await self.deliver(queue, message, via_ladder=via_ladder, guard=guard)
        self.announce_sent(queue, message)

    def announce(self, queue: str, message: Message) -> Message:
        """Before a publish: Celery's `before_task_publish` and middleware's `before_publish`,
        which may change the message (`send` calls it; so does a batch, per message)."""
        if signals.before_task_publish.receivers:
            message = _announce(queue, message)
        middleware = self.middleware
        if middleware.wants("before_publish"):
            message = middleware.before_publish(message, queue)
        return message

    def check_delay(self, queue: str, message: Message, via_ladder: bool | None = None) -> None:
        """Raise `DelayTooLong` for a message due beyond the ladder's reach, before anything
        is published (`send` and a batch ask before their first publish)."""
        through_ladder = self._through_ladder if via_ladder is None else via_ladder
        if message.eta is not None and through_ladder:
            lead = ladder.LEAD_SECONDS
            ladder.route(message.eta.timestamp() - self._clock.time() - lead, queue)

    async def deliver(
        self,
        queue: str,
        message: Message,
        *,
        via_ladder: bool | None = None,
        guard: Callable[[], None] | None = None,
    ) -> None:
        """Publish an announced message, confirmed, through lost connections (`send`'s core)."""

        async def attempt() -> None:
            if guard is not None:
                guard()
            await self._send_once(queue, message, via_ladder)

        await self.retrying(f"publish to {queue!r}", attempt)

    def announce_sent(self, queue: str, message: Message) -> None:
        """After a confirmed publish: `after_task_publish` and middleware's `after_publish`."""
        if signals.after_task_publish.receivers:
            signals.after_task_publish.send(
                sender=message.task,
                body=(list(message.args), dict(message.kwargs), message.embed),
                exchange="",
                routing_key=queue,
                headers={"task": message.task, "id": message.id, **message.headers},
            )
        if self.middleware.wants("after_publish"):
            self.middleware.call("after_publish", message, queue)

    async def publish(self, envelope: Envelope, *, mandatory: bool = True, what: str) -> None:
        """Publish a ready envelope (e.g. an rpc reply), reconnecting as `send` does."""
        await self.retrying(what, lambda: self.transport.publish(envelope, mandatory=mandatory))

    async def retrying(self, what: str, attempt_once: Callable[[], Awaitable[None]]) -> None:
        """Run `attempt_once` until it succeeds, reconnecting through lost connections for up
        to `publish_timeout` seconds, then raise `BrokerUnavailable` (a `BrokerTLSError` at
        once)."""
        deadline: float | None = None
        attempt = 0
        while True:
            try:
                if not self.transport.is_connected:
                    if deadline is None:
                        deadline = self._clock.monotonic() + self._settings.publish_timeout
                    await self._reconnect(what, deadline)
                await attempt_once()
                return
            except (BrokerUnavailable, BrokerNotReady) as exc:  # lost, or a node catching up
                if isinstance(exc, BrokerTLSError):
                    raise  # a configuration error: waiting cannot mend it
                now = self._clock.monotonic()
                if deadline is None:
                    deadline = now + self._settings.publish_timeout
                if now >= deadline:
                    raise BrokerUnavailable(
                        f"{what} not confirmed within {self._settings.publish_timeout}s: {exc}"
                    ) from exc
                await self._clock.sleep(min(backoff_delay(attempt, self._rng), deadline - now))
                attempt += 1

    async def _reconnect(self, what: str, deadline: float) -> None:
        # One reconnect serves every caller that finds the connection down: a batch's hundreds
        # of publishes in flight would otherwise each dial (one after another, behind the
        # transport's lock) and back off on their own, and each forget the declarations that
        # the others had made again since. A task of its own, so no caller's cancellation
        # stops it under the others.
        running = self._reconnecting
        if running is None:
            running = asyncio.get_running_loop().create_task(self._reconnect_once(what, deadline))
            running.add_done_callback(_retrieve)
            self._reconnecting = running
        await asyncio.shield(running)

    async def _reconnect_once(self, what: str, deadline: float) -> None:
        try:
            await reconnect(
                self.transport, clock=self._clock, rng=self._rng, deadline=deadline, what=what
            )
            self.forget_declarations()
        finally:
            self._reconnecting = None

    async def _send_once(self, queue: str, message: Message, via_ladder: bool | None) -> None:
        if self._bands:  # a priority of 5-9 travels in the queue's high band
            queue = band_queue(queue, message.priority)
        route = None
        if message.eta is not None:
            due = message.eta.timestamp()
            millis = round(due * 1000)
            if message.headers.get(ETA_HEADER) != millis:
                message = replace(message, headers={**message.headers, ETA_HEADER: millis})
            through_ladder = self._through_ladder if via_ladder is None else via_ladder
            lead = ladder.LEAD_SECONDS
            if through_ladder and ladder.units_for(due - self._clock.time() - lead) > 0:
                # Declare first, then compute the route: the first declaration of the ladder
                # takes a while, and a route computed before it would arrive that much late.
                await self.ensure_delay_target(queue)
                route = ladder.route(due - self._clock.time() - lead, queue)
        now = self._clock.time()
        if route is None:
            if "queue:" + queue not in self._done:
                await self.ensure_queue(queue)
            body, properties = protocol.encode(message, now=now)
            envelope = Envelope(exchange="", routing_key=queue, body=body, properties=properties)
        else:
            body, properties = protocol.encode(message, now=now)
            # No per-message TTL inside the ladder: a message whose own expiration is shorter
            # than a level's TTL would be dead-lettered to the next level early. The worker
            # enforces `expires` on arrival instead.
            if properties.expiration is not None:
                properties = replace(properties, expiration=None)
            envelope = Envelope(
                exchange=route.exchange,
                routing_key=route.routing_key,
                body=body,
                properties=properties,
            )
        await self.transport.publish(envelope)


def _announce(queue: str, message: Message) -> Message:
    """Send `before_task_publish`; keep the headers its receivers added (e.g. tracing ids)."""
    headers: dict[str, Any] = {
        "task": message.task,
        "id": message.id,
        "retries": message.retries,
        "root_id": message.root_id,
        "parent_id": message.parent_id,
        "eta": None if message.eta is None else message.eta.isoformat(),
        **message.headers,
    }
    signals.before_task_publish.send(
        sender=message.task,
        body=(list(message.args), dict(message.kwargs), message.embed),
        exchange="",
        routing_key=queue,
        headers=headers,
        properties={"correlation_id": message.id, "reply_to": message.reply_to},
        declare=[],
        retry_policy=None,
    )
    added = {k: v for k, v in headers.items() if k not in protocol.HEADER_FIELDS}
    return message if added == message.headers else replace(message, headers=added)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # every waiter may have been cancelled
