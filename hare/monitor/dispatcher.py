"""Sending a node's Celery events: a bounded queue drained by one task, never waited on.

`send` is called on the worker's event loop where something happened (a task received,
started, ended): it stamps the event (timestamp, `hostname`, `utcoffset`, `pid`, `clock`) and
appends it to a queue, and returns. One sender task takes what is queued, in batches of up
to `BATCH`, and publishes them on the worker's connection, concurrently (the confirms
pipeline). So a task never waits for the broker on account of an event.

When the broker is away (a lost connection, a reconnect under way), a publish fails fast:
the events of that batch are dropped (counted in `dropped`), the sender pauses
(`RETRY_SECONDS`), and what is queued meanwhile waits, up to `limit` events (10,000 by
default, a few MB); past that the oldest are dropped (counted too) so that the newest state
goes out once the connection is back. Events are information, not work: losing some during
an outage is the documented trade-off (Flower catches up with the next heartbeat and the next
task events), stalling tasks for them never is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from hare.clock import Clock
from hare.errors import BrokerError
from hare.monitor.event import EXCHANGE, envelope, event, utcoffset
from hare.transport.base import Transport

__all__ = ("BATCH", "RETRY_SECONDS", "EventDispatcher", "local_utcoffset")

logger = logging.getLogger("hare.monitor")

#: Events published at once, at most (their confirms are awaited together).
BATCH = 128
#: Seconds the sender waits after a failed publish before it tries again.
RETRY_SECONDS = 1.0


class LogicalClock(Protocol):
    """A Lamport clock (`hare.control.pidbox.LamportClock`)."""

    def forward(self) -> int: ...


class _Lamport:
    def __init__(self) -> None:
        self.value = 0

    def forward(self) -> int:
        self.value += 1
        return self.value


def local_utcoffset() -> float:
    """This host's offset to UTC now, in hours west (Celery's `utcoffset()`)."""
    return utcoffset(bool(time.localtime().tm_isdst), time.timezone, time.altzone)


class EventDispatcher:
    """Sends the Celery events of the node `hostname` through `transport` (see the module).

    `send` must be called on the event loop the dispatcher was started on.
    """

    def __init__(
        self,
        transport: Transport,
        hostname: str,
        *,
        clock: Clock,
        lamport: LogicalClock | None = None,
        limit: int = 10_000,
        pid: int | None = None,
        offset: Callable[[], float] = local_utcoffset,
    ) -> None:
        self.hostname = hostname
        self._transport = transport
        self._clock = clock
        self._lamport = lamport or _Lamport()
        self._limit = limit
        self._pid = os.getpid() if pid is None else pid
        self._offset = offset
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._busy = False
        self._sender: asyncio.Task[None] | None = None
        self._declared = False
        self._failing = False
        self._closed = False
        #: Events sent (confirmed by the broker) and dropped (queue full, broker away).
        self.sent = 0
        self.dropped = 0

    def start(self) -> None:
        """Start the sender task (on the running loop)."""
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._run())

    def send(self, type_: str, **fields: Any) -> None:
        """Queue the event `type_` with `fields` (JSON-serializable); never blocks."""
        if self._closed:
            return
        body = event(
            type_,
            self._clock.time(),
            hostname=self.hostname,
            utcoffset=self._offset(),
            pid=self._pid,
            clock=self._lamport.forward(),
            **fields,
        )
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(body)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Events queued and not published yet."""
        return len(self._queue)

    async def close(self, grace: float = 5.0) -> None:
        """Send what is queued (for up to `grace` seconds), then stop; later sends are
        ignored."""
        self._closed = True
        sender, self._sender = self._sender, None
        if sender is None:
            return
        if self._queue or self._busy:
            idle = asyncio.ensure_future(self._idle.wait())
            deadline = asyncio.ensure_future(self._clock.sleep(grace))
            await asyncio.wait({idle, deadline}, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            deadline.cancel()
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        if self._queue:
            self.dropped += len(self._queue)
            left = len(self._queue)
            logger.warning("%d Celery event(s) not sent before the worker stopped", left)
            self._queue.clear()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._idle.clear()
            size = min(BATCH, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
            self._busy = True
            try:
                if not await self._publish(batch):
                    await self._clock.sleep(RETRY_SECONDS)
            finally:
                self._busy = False

    async def _publish(self, batch: list[dict[str, Any]]) -> bool:
        """Publish `batch`; whether it all went out. A failure drops the events it concerns."""
        transport = self._transport
        outcomes: list[Any]
        try:
            if not self._declared:
                await transport.declare_exchange(EXCHANGE)
                self._declared = True
            envelopes = [envelope(body, self.hostname) for body in batch]
            outcomes = await asyncio.gather(
                *(transport.publish(one, mandatory=False) for one in envelopes),
                return_exceptions=True,
            )
        except Exception as exc:  # the declaration, or an event that does not encode
            outcomes = [exc] * len(batch)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        self.sent += len(batch) - len(failures)
        if not failures:
            if self._failing:
                logger.info("Celery events are sent again")
            self._failing = False
            return True
        self.dropped += len(failures)
        for failure in failures:
            if isinstance(failure, asyncio.CancelledError):
                raise failure
            if not isinstance(failure, BrokerError):
                logger.error("a Celery event could not be sent: %r; dropped", failure)
        self._declared = False
        if not self._failing:
            logger.warning(
                "could not send Celery events (%s): dropped %d; the next ones wait for the "
                "broker (up to %d queued)",
                failures[0],
                len(failures),
                self._limit,
            )
        self._failing = True
        return False
