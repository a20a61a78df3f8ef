"""The revoked ids a worker honours, read from the revocation stream and kept current.

A worker makes one `Revocations`, calls `subscribe(transport)` each time it (re)connects,
before it consumes tasks, and asks `is_revoked(task_id)` before it starts a task. `subscribe`
returns once everything written to the stream before it was read, so a worker that starts
after a revoke never starts that task. After a reconnect it reads on from where it was.

`publish_revocation` is the writing side, used by `hare.control.Control.revoke`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from hare.clock import Clock, SystemClock
from hare.control.revocation import (
    DEFAULT_TTL,
    MAX_TTL,
    STREAM,
    RevocationRecord,
    RevokedSet,
    RevokedStamps,
    SyncMarker,
    decode_entry,
    encode_marker,
    encode_record,
    revocation_stream,
)
from hare.core.envelope import Delivery, Envelope, Properties
from hare.errors import BrokerError, BrokerUnavailable, ConfigurationError, MalformedMessage
from hare.transport.base import Consumer, Transport

__all__ = ("Revocations", "Terminate", "publish_revocation")

logger = logging.getLogger("hare.revocations")

#: `terminate(task_ids, signal)`: stop those of `task_ids` that run here; return their ids.
Terminate = Callable[[Sequence[str], str], Collection[str]]

_PREFETCH = 256
_PROPERTIES = Properties(content_type="application/json", content_encoding="utf-8")


async def publish_revocation(
    transport: Transport,
    ids: Sequence[str],
    *,
    terminate: bool = False,
    signal: str = "SIGTERM",
    ttl: float = DEFAULT_TTL,
    clock: Clock | None = None,
) -> RevocationRecord:
    """Write a revocation to the stream; return once the broker confirmed it."""
    if not 0 < ttl <= MAX_TTL:
        raise ConfigurationError(
            f"a revocation lasts more than 0 and at most {MAX_TTL:g} s (the stream keeps "
            f"entries that long), not {ttl!r}"
        )
    now = (clock or SystemClock()).time()
    record = RevocationRecord(
        ids=tuple(ids), terminate=terminate, signal=signal, revoked_at=now, expires_at=now + ttl
    )
    await transport.declare_queue(revocation_stream())
    await transport.publish(_envelope(encode_record(record)))
    return record


def _envelope(body: bytes) -> Envelope:
    return Envelope(exchange="", routing_key=STREAM, body=body, properties=_PROPERTIES)


class Revocations:
    """The revoked task ids, from the stream and from broadcasts, each until it expires.

    `terminate` is called (on the event loop) with ids whose running task must stop: the
    first time a revocation with `terminate=True` names them. `ttl` is how long a revocation
    that carries no expiry of its own lasts (one received by broadcast, from a Celery client).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        terminate: Terminate | None = None,
        ttl: float = DEFAULT_TTL,
        catch_up_timeout: float = 60.0,
    ) -> None:
        if ttl <= 0 or catch_up_timeout <= 0:
            raise ConfigurationError("ttl and catch_up_timeout must be positive")
        self._clock = clock or SystemClock()
        self._terminate = terminate
        self.ttl = ttl
        self._catch_up_timeout = catch_up_timeout
        self._set = RevokedSet()
        #: Stamps revoked by `revoke_by_stamped_headers` (in memory, as in Celery).
        self.stamps = RevokedStamps()
        self._next_offset: int | None = None  # where to read on after a reconnect
        self._markers: dict[str, asyncio.Event] = {}
        self._consumer: Consumer | None = None
        self._transport: Transport | None = None

    # -- what the worker asks ----------------------------------------------------------------

    def is_revoked(self, task_id: str) -> bool:
        """Whether `task_id` must not start now."""
        return self._set.contains(task_id, self._clock.time())

    def is_revoked_by_stamps(self, headers: Mapping[str, Any]) -> bool:
        """Whether a message with these headers carries a revoked stamp."""
        return self.stamps.matching(headers) is not None

    def revoked_ids(self) -> list[str]:
        """The ids revoked now, oldest first (`inspect revoked`)."""
        return self._set.ids(self._clock.time())

    def revoked_until(self) -> dict[str, float]:
        """The ids revoked now, each with the time its revocation ends (`self.ttl` after it
        was revoked, unless the revoke said otherwise)."""
        return self._set.until(self._clock.time())

    def forget(self, task_id: str) -> None:
        """Let `task_id` run after all (Celery's `worker_state.revoked.discard`)."""
        self._set.discard(task_id)

    def apply(
        self,
        ids: Sequence[str],
        *,
        terminate: bool = False,
        signal: str = "SIGTERM",
        expires_at: float | None = None,
    ) -> list[str]:
        """Revoke `ids` here; with `terminate`, stop those running. Return the ids stopped here.

        A task is asked to terminate once, however many copies of the request arrive (by the
        stream and by a broadcast); the ids stopped by an earlier copy are returned again.
        """
        now = self._clock.time()
        until = now + self.ttl if expires_at is None else expires_at
        for task_id in ids:
            self._set.add(task_id, until, now)
        if not terminate or self._terminate is None:
            return []
        first = [task_id for task_id in ids if self._set.mark_terminated(task_id)]
        if first:
            try:
                for task_id in self._terminate(first, signal):
                    self._set.mark_stopped(task_id)
            except Exception:
                logger.exception("terminating %s failed", ", ".join(first))
        return [task_id for task_id in ids if self._set.stopped(task_id)]

    # -- the stream --------------------------------------------------------------------------

    async def subscribe(self, transport: Transport) -> None:
        """Consume the stream (from the start, or on from where a lost connection left off)
        and return once everything written before this call was read.

        Raises `BrokerUnavailable` if that takes longer than `catch_up_timeout` (a worker's
        reconnect loop then tries again; at start the worker stops).
        """
        self._transport = transport
        await transport.declare_queue(revocation_stream())
        offset = "first" if self._next_offset is None else self._next_offset
        self._consumer = await transport.consume(
            STREAM, self._on_entry, prefetch=_PREFETCH, arguments={"x-stream-offset": offset}
        )
        token = uuid.uuid4().hex
        seen = self._markers[token] = asyncio.Event()
        try:
            await transport.publish(_envelope(encode_marker(token)))
            waiter = asyncio.ensure_future(seen.wait())
            sleeper = asyncio.ensure_future(self._clock.sleep(self._catch_up_timeout))
            try:
                await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                sleeper.cancel()
        finally:
            del self._markers[token]
        if not seen.is_set():
            raise BrokerUnavailable(
                f"the revocation stream {STREAM!r} was not read up to now within "
                f"{self._catch_up_timeout:g} s"
            )

    async def close(self) -> None:
        """Stop reading the stream (the worker's transport closes it anyway)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.close()

    async def _on_entry(self, delivery: Delivery) -> None:
        offset = delivery.properties.headers.get("x-stream-offset")
        if isinstance(offset, int) and not isinstance(offset, bool):
            self._next_offset = max(self._next_offset or 0, offset + 1)
        try:
            entry = decode_entry(delivery.body)
        except MalformedMessage as exc:
            logger.warning("skipping a bad entry of %s at offset %s: %s", STREAM, offset, exc)
            entry = None
        if isinstance(entry, SyncMarker):
            seen = self._markers.get(entry.token)
            if seen is not None:
                seen.set()
        elif isinstance(entry, RevocationRecord):
            logger.debug("revocation of %s read from %s", ", ".join(entry.ids), STREAM)
            self.apply(
                entry.ids,
                terminate=entry.terminate,
                signal=entry.signal,
                expires_at=entry.expires_at,
            )
        transport = self._transport
        if transport is not None:
            try:
                await transport.ack(delivery)  # on a stream an ack only gives credit back
            except BrokerError as exc:
                logger.warning("could not ack a revocation entry: %s", exc)
