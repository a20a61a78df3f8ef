"""Remote control, the client side: broadcast to workers, inspect them, revoke tasks.

Speaks Celery's pidbox protocol (`hare.control.pidbox`), so it reaches Celery 5.x workers as well as
hare workers, and returns what Celery's `app.control` returns:

    control = Control(transport)                       # a connected Transport
    await control.inspect().ping()                     # {"hare@web-1": {"ok": "pong"}, ...}
    await control.inspect(timeout=2).active()          # {nodename: [task info, ...]} or None
    await control.revoke(task_id)                      # every worker, now and later
    await control.broadcast("rate_limit", {...})       # [{nodename: reply}, ...]

Every `timeout` may be None, meaning the default (`DEFAULT_TIMEOUT`, one second), as Celery's
callers pass it (`AsyncResult.revoke()` sends `timeout=None`); `signal=None` means SIGTERM.

Each call that waits for replies uses a reply queue of its own (`<oid>.reply.celery.pidbox`,
declared as kombu declares it), deleted when the call returns, so concurrent calls never see
each other's replies.

A revoke is written to the revocation stream first (`revocation_stream`), so a worker that is
offline or not started yet honours it too, then broadcast, so running workers (hare and Celery)
learn it at once and can terminate a running task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hare.clock import Clock, SystemClock
from hare.control import pidbox
from hare.control.pidbox import PERSISTED
from hare.control.revocation import DEFAULT_TTL, signal_name, task_ids
from hare.control.revocation_stream import publish_revocation
from hare.core.envelope import Delivery, Envelope, Properties
from hare.errors import BrokerError, ConfigurationError, HareError
from hare.transport.base import Transport

__all__ = ("DEFAULT_TIMEOUT", "Control", "Inspect")

logger = logging.getLogger("hare.control")

Replies = list[dict[str, Any]]
ReplyCallback = Callable[[dict[str, Any]], Any]

#: Seconds a call waits for replies when its `timeout` is None (Celery's default).
DEFAULT_TIMEOUT = 1.0


def _window(timeout: float | None) -> float:
    """The seconds to wait for replies: `timeout`, or the default for None."""
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


class Control:
    """Celery's `app.control`, async, on a connected `transport`.

    `namespace` is Celery's `control_exchange` setting ("celery"); `revocation_ttl` is how
    long a revoke lasts in the stream (at most a day).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        clock: Clock | None = None,
        namespace: str = pidbox.DEFAULT_NAMESPACE,
        revocation_ttl: float = DEFAULT_TTL,
    ) -> None:
        self.transport = transport
        self.namespace = namespace
        self.revocation_ttl = revocation_ttl
        self.lamport = pidbox.LamportClock()
        self._clock = clock or SystemClock()

    def inspect(
        self,
        destination: Sequence[str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        limit: int | None = None,
        *,
        callback: ReplyCallback | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Inspect:
        """Read-only commands, each returning `{nodename: reply}` or None if nobody answered."""
        return Inspect(
            self,
            destination=destination,
            timeout=timeout,
            limit=limit,
            callback=callback,
            pattern=pattern,
            matcher=matcher,
        )

    async def broadcast(
        self,
        method: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        destination: Sequence[str] | None = None,
        reply: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - Celery's API: how long replies are collected
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
        callback: ReplyCallback | None = None,
    ) -> Replies:
        """Send `method(**arguments)` to the workers; collect `[{nodename: reply}, ...]`.

        `destination`: node names (None: every node). With `reply`, wait up to `timeout`
        seconds (None: `DEFAULT_TIMEOUT`), or until `limit` replies came
        (`len(destination)` by default); `callback` is called with each reply as it comes.
        """
        if not method:
            raise ConfigurationError("a control command needs a method name")
        if isinstance(destination, str):
            raise ConfigurationError("destination is a list of node names, not one string")
        timeout = _window(timeout)
        if limit is None and destination:
            limit = len(destination)
        transport = self.transport
        await transport.declare_exchange(pidbox.control_exchange(self.namespace))
        if not reply:
            await self._publish(method, arguments, destination, None, timeout, pattern, matcher)
            return []
        oid = str(uuid.uuid4())
        queue = pidbox.reply_queue(oid, self.namespace)
        await transport.declare_exchange(pidbox.reply_exchange(self.namespace))
        await transport.declare_queue(queue)
        try:
            await transport.bind(pidbox.reply_binding(oid, self.namespace))
            return await self._collect(
                queue.name,
                oid,
                method,
                arguments,
                destination,
                timeout,
                limit,
                pattern,
                matcher,
                callback,
            )
        finally:
            with contextlib.suppress(BrokerError):
                await transport.delete_queue(queue.name)

    async def _collect(
        self,
        queue: str,
        oid: str,
        method: str,
        arguments: Mapping[str, Any] | None,
        destination: Sequence[str] | None,
        window: float,
        limit: int | None,
        pattern: str | None,
        matcher: str | None,
        callback: ReplyCallback | None = None,
    ) -> Replies:
        ticket = str(uuid.uuid4())
        replies: Replies = []
        enough = asyncio.Event()

        async def on_reply(delivery: Delivery) -> None:
            headers = delivery.properties.headers
            self.lamport.adjust(_int(headers.get("clock")))
            try:
                if headers.get("ticket", ticket) == ticket and not enough.is_set():
                    replies.append(pidbox.decode_reply(delivery.body))
                    if limit is not None and len(replies) >= limit:
                        enough.set()
                    if callback is not None:
                        callback(replies[-1])
            except HareError as exc:
                logger.warning("ignoring a control reply: %s", exc)
            except Exception:
                logger.exception("a control reply callback raised")
            finally:
                with contextlib.suppress(BrokerError):
                    await self.transport.ack(delivery)

        consumer = await self.transport.consume(queue, on_reply, prefetch=100)
        try:
            reply_to = pidbox.ReplyTo(pidbox.reply_exchange(self.namespace).name, oid)
            await self._publish(
                method, arguments, destination, (ticket, reply_to), window, pattern, matcher
            )
            waiter = asyncio.ensure_future(enough.wait())
            sleeper = asyncio.ensure_future(self._clock.sleep(window))
            try:
                await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                sleeper.cancel()
        finally:
            await consumer.close()  # and its channel: a call must not leave one behind
        return list(replies)

    async def _publish(
        self,
        method: str,
        arguments: Mapping[str, Any] | None,
        destination: Sequence[str] | None,
        reply: tuple[str, pidbox.ReplyTo] | None,
        window: float,
        pattern: str | None,
        matcher: str | None,
    ) -> None:
        ticket, reply_to = reply if reply is not None else (None, None)
        body = pidbox.encode_request(
            method,
            arguments,
            destination=destination,
            ticket=ticket,
            reply_to=reply_to,
            pattern=pattern,
            matcher=matcher,
        )
        # kombu: `expires` is when the client stops listening; 0 (never) for a cast.
        expires = self._clock.time() + window if reply is not None else 0
        envelope = Envelope(
            exchange=pidbox.control_exchange(self.namespace).name,
            routing_key="",
            body=body,
            properties=Properties(
                content_type=pidbox.CONTENT_TYPE,
                content_encoding="utf-8",
                headers={"clock": self.lamport.forward(), "expires": expires},
            ),
        )
        # Not mandatory: with no worker online nobody is bound, and that is not an error.
        await self.transport.publish(envelope, mandatory=False)

    async def revoke(
        self,
        task_id: str | Iterable[str],
        *,
        terminate: bool = False,
        signal: str | int | None = "SIGTERM",
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - Celery's API: how long replies are collected
        ttl: float | None = None,
        limit: int | None = None,
        callback: ReplyCallback | None = None,
    ) -> Replies:
        """Revoke one task id or several: no worker starts them, now or later.

        Written to the revocation stream (confirmed) before it is broadcast, so workers that
        are offline or start later honour it for `ttl` seconds (the Control's
        `revocation_ttl` by default, at most a day). `terminate` also stops the task where
        it runs, with `signal` (None: SIGTERM) for a task isolated in a process. With
        `destination` only those nodes are told, and nothing is written to the stream.
        """
        timeout = _window(timeout)  # checked before anything is written
        ids = task_ids(task_id)
        name = signal_name(signal)
        arguments: dict[str, Any] = {"task_id": list(ids), "terminate": terminate, "signal": name}
        if destination is None:
            await publish_revocation(
                self.transport,
                ids,
                terminate=terminate,
                signal=name,
                ttl=self.revocation_ttl if ttl is None else ttl,
                clock=self._clock,
            )
            arguments[PERSISTED] = True
        return await self.broadcast(
            "revoke",
            arguments,
            destination=destination,
            reply=reply,
            timeout=timeout,
            limit=limit,
            callback=callback,
        )

    async def terminate(
        self, task_id: str | Iterable[str], signal: str | int | None = "SIGTERM", **options: Any
    ) -> Replies:
        """`revoke(task_id, terminate=True, signal=signal)`."""
        return await self.revoke(task_id, terminate=True, signal=signal, **options)

    async def ping(
        self,
        destination: Sequence[str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - Celery's API: how long replies are collected
        limit: int | None = None,
        callback: ReplyCallback | None = None,
    ) -> Replies:
        """`[{nodename: {"ok": "pong"}}, ...]` (Celery's `Control.ping`)."""
        return await self.broadcast(
            "ping", destination=destination, timeout=timeout, limit=limit, callback=callback
        )


class Inspect:
    """Celery's `app.control.inspect()`: each method returns `{nodename: reply}`, or None
    when no node answered within the timeout."""

    def __init__(
        self,
        control: Control,
        *,
        destination: Sequence[str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        limit: int | None = None,
        callback: ReplyCallback | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> None:
        self.control = control
        self.destination = destination
        self.timeout = _window(timeout)
        self.limit = limit
        self.callback = callback
        self.pattern = pattern
        self.matcher = matcher

    async def request(
        self, method: str, destination: Sequence[str] | None = None, **arguments: Any
    ) -> dict[str, Any] | None:
        """Any read-only command by name (Celery workers know more than hare's): `{nodename:
        reply}`, or None. `destination` overrides the one this `Inspect` was made with."""
        replies = await self.control.broadcast(
            method,
            arguments,
            destination=self.destination if destination is None else destination,
            timeout=self.timeout,
            limit=self.limit,
            pattern=self.pattern,
            matcher=self.matcher,
            callback=self.callback,
        )
        return pidbox.flatten_replies(replies) or None

    async def ping(self, destination: Sequence[str] | None = None) -> dict[str, Any] | None:
        return await self.request("ping", destination)

    async def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        return await self.request("active", safe=safe)

    async def reserved(self, safe: bool | None = None) -> dict[str, Any] | None:
        return await self.request("reserved", safe=safe)

    async def scheduled(self, safe: bool | None = None) -> dict[str, Any] | None:
        return await self.request("scheduled", safe=safe)

    async def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return await self.request("registered", taskinfoitems=list(taskinfoitems))

    async def stats(self) -> dict[str, Any] | None:
        return await self.request("stats")

    async def revoked(self) -> dict[str, Any] | None:
        return await self.request("revoked")

    async def active_queues(self) -> dict[str, Any] | None:
        return await self.request("active_queues")

    async def report(self) -> dict[str, Any] | None:
        return await self.request("report")

    async def clock(self) -> dict[str, Any] | None:
        return await self.request("clock")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
