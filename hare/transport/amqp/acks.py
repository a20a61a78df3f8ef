"""Acks of one consumer channel, coalesced into as few `basic.ack` frames as possible.

A worker acks every delivery; one frame (and one socket write) per ack was the largest single
cost of a drain (py-spy: 19% of the worker in `write`). Acks are sent by one flusher at a
time: the first ack asked for starts it at the end of the loop turn; while it sends, further
acks gather, and it sends them next, until none is waiting. While other deliveries of the
channel are still being processed (at least `GATHER_MIN_OUTSTANDING`), a round first waits
`GATHER_SECONDS` (1 ms) for their acks to join it (a 20,000-task drain sent 3.3 acks a frame
without the wait, 10.4 with it).

Each round sends the longest run of asked tags at the front of the channel's unsettled
deliveries as one `basic.ack(multiple=True)`, any others one by one. So an ack waits at most
for the frame being written before its own and the gather time, a slow task never holds back
the ack of a fast one (nor its prefetch slot), and the busier the worker, the more acks share
a frame.

One flusher, not one per loop turn: flushes queued on the lock behind each other (one a turn,
each taking a few turns to drain its frame) grew without bound under load, and with them the
tasks waiting on their acks (seen: a third of all tasks of a 20,000-task drain still waiting
at its end).

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

#: How long a round waits for more acks while other deliveries of the channel are still being
#: processed (and so likely to ask soon). With fewer than `GATHER_MIN_OUTSTANDING` outstanding it
#: goes at once: a small prefetch window (a prefork pool of 2, a worker running one task at a
#: time) gets its next delivery without this delay, which there would cost more than the frames
#: it saves (a -c 2 prefork drain of no-op tasks: 1,224 µs a task with the wait).
GATHER_SECONDS = 0.001
GATHER_MIN_OUTSTANDING = 4


class AckCoalescer:
    """The unsettled deliveries of one channel and the acks waiting to be sent."""

    def __init__(
        self,
        send: Send,
        *,
        gather: float = GATHER_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._send = send  # send(delivery_tag, multiple)
        self._gather, self._sleep = gather, sleep
        self._unsettled: dict[int, None] = {}  # insertion order = delivery order
        self._asked: set[int] = set()
        #: The round the next asked acks go out in, and the task sending rounds (if any).
        self._round: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
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
        """Ack `tag` in the next round of the flusher; return once its frame is sent."""
        if tag not in self._unsettled:
            await self._send(tag, False)
            return
        self._asked.add(tag)
        round_ = self._round
        if round_ is None:
            loop = asyncio.get_running_loop()
            round_ = self._round = loop.create_future()
            if self._flusher is None:
                loop.call_soon(self._start_flusher)
        # Shielded: a cancelled waiter must not cancel the round the others wait on.
        await asyncio.shield(round_)

    def _start_flusher(self) -> None:
        if self._flusher is None and self._round is not None:
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        """Send rounds until no ack waits; each round's waiters learn how it went."""
        try:
            while (round_ := self._round) is not None:
                outstanding = len(self._unsettled) - len(self._asked)
                if self._gather > 0 and outstanding >= GATHER_MIN_OUTSTANDING:
                    await self._sleep(self._gather)
                self._round = None
                try:
                    async with self._lock:
                        await self._send_asked_locked()
                except asyncio.CancelledError:
                    round_.cancel()
                    raise
                except Exception as exc:
                    if not round_.done():
                        round_.set_exception(exc)
                else:
                    if not round_.done():
                        round_.set_result(None)
        finally:
            self._flusher = None
            if self._round is not None:  # asked while the flusher was being stopped
                self._round.cancel()
                self._round = None

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
