"""Acks of one consumer channel, coalesced into as few `basic.ack` frames as possible.

A worker acks every delivery; one frame (and one socket write) per ack was the largest single
cost of a drain (py-spy: 19% of the worker in `write`). Acks requested in the same turn of the
event loop are sent together at its end: the longest run of them at the front of the
channel's unsettled deliveries as one `basic.ack(multiple=True)`, any others one by one. No
ack waits for a later turn, so a slow task never holds back the ack of a fast one (nor its
prefetch slot), and the broker learns of each ack as soon as before, give or take one turn.

`multiple=True` settles every unsettled delivery up to its tag, so the run must hold only
tags this channel was asked to ack. Deliveries are registered in the order they arrive (the
channel's tag order). Every frame that settles a delivery (a flush's acks, a reject) is sent
under one lock, and a tag leaves the registry only under it: when a flush computes its run,
every tag missing from the registry below it is already settled at the broker, so a multiple
ack never covers a delivery still running or being rejected. A tag that was never registered
(e.g. from `basic.get`) is acked on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ("AckCoalescer",)

Send = Callable[[int, bool], Awaitable[None]]


class AckCoalescer:
    """The unsettled deliveries of one channel and the acks asked for in this loop turn."""

    def __init__(self, send: Send) -> None:
        self._send = send  # send(delivery_tag, multiple)
        self._unsettled: dict[int, None] = {}  # insertion order = delivery order
        self._asked: set[int] = set()
        self._flush: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    def delivered(self, tag: int) -> None:
        """Register a delivery (in arrival order)."""
        self._unsettled[tag] = None

    async def reject(self, tag: int, send_reject: Callable[[], Awaitable[None]]) -> None:
        """Settle `tag` otherwise (a reject): sent in order with the acks, never covered."""
        async with self._lock:
            self._unsettled.pop(tag, None)
            self._asked.discard(tag)
            await send_reject()

    async def ack(self, tag: int) -> None:
        """Ack `tag` with the others asked for in this turn; return once its frame is sent."""
        if tag not in self._unsettled:
            await self._send(tag, False)
            return
        self._asked.add(tag)
        flush = self._flush
        if flush is None:
            loop = asyncio.get_running_loop()
            flush = self._flush = loop.create_future()
            loop.call_soon(self._start_flush, flush)
        await asyncio.shield(flush)

    def _start_flush(self, flush: asyncio.Future[None]) -> None:
        self._flush = None
        task = asyncio.ensure_future(self._send_asked())
        task.add_done_callback(lambda done: _settle(flush, done))

    async def _send_asked(self) -> None:
        async with self._lock:
            await self._send_asked_locked()

    async def _send_asked_locked(self) -> None:
        asked, self._asked = self._asked, set()
        unsettled = self._unsettled
        upto = None
        for tag in unsettled:
            if tag not in asked:
                break
            upto = tag
        singles = []
        if upto is not None:
            for tag in list(unsettled):
                del unsettled[tag]
                asked.discard(tag)
                if tag == upto:
                    break
        for tag in sorted(asked):
            unsettled.pop(tag, None)
            singles.append(tag)
        if upto is not None:
            await self._send(upto, True)
        for tag in singles:
            await self._send(tag, False)


def _settle(flush: asyncio.Future[None], done: asyncio.Task[None]) -> None:
    if flush.done():
        return
    if done.cancelled():
        flush.cancel()
    elif (error := done.exception()) is not None:
        flush.set_exception(error)
    else:
        flush.set_result(None)
