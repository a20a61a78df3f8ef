"""AckCoalescer: acks asked for in one loop turn share frames, and never cover the wrong tag."""

from __future__ import annotations

import asyncio

import pytest

from hare.transport.amqp.acks import GATHER_MIN_OUTSTANDING, AckCoalescer

pytestmark = pytest.mark.anyio


class Wire:
    def __init__(self) -> None:
        self.frames: list[tuple[int, bool]] = []

    async def send(self, tag: int, multiple: bool) -> None:
        self.frames.append((tag, multiple))


async def test_acks_of_one_turn_go_out_as_one_multiple_ack() -> None:
    wire = Wire()
    acks = AckCoalescer(wire.send, gather=0)
    for tag in range(1, 6):
        acks.delivered(tag)
    await asyncio.gather(*(acks.ack(tag) for tag in (3, 1, 2)))
    assert wire.frames == [(3, True)]
    await acks.ack(5)
    await acks.ack(4)
    assert wire.frames == [(3, True), (5, False), (4, True)]


async def test_an_unsettled_delivery_is_never_covered() -> None:
    wire = Wire()
    acks = AckCoalescer(wire.send, gather=0)
    for tag in range(1, 5):
        acks.delivered(tag)
    await asyncio.gather(acks.ack(1), acks.ack(3), acks.ack(4))  # 2 still runs
    assert wire.frames == [(1, True), (3, False), (4, False)]


async def test_a_rejected_delivery_leaves_the_run() -> None:
    wire = Wire()
    acks = AckCoalescer(wire.send, gather=0)
    for tag in range(1, 4):
        acks.delivered(tag)
    rejected: list[int] = []

    async def send_reject() -> None:
        rejected.append(1)

    await acks.reject(1, send_reject)
    await asyncio.gather(acks.ack(2), acks.ack(3))
    assert rejected == [1] and wire.frames == [(3, True)]


async def test_frames_of_overlapping_flushes_go_out_in_order() -> None:
    """A flush that is still sending holds the next one back: a later multiple ack must not
    reach the broker before an earlier single ack of a tag it covers."""
    release = asyncio.Event()
    frames: list[tuple[int, bool]] = []

    async def slow(tag: int, multiple: bool) -> None:
        if not frames:
            await release.wait()
        frames.append((tag, multiple))

    acks = AckCoalescer(slow, gather=0)
    for tag in range(1, 6):
        acks.delivered(tag)
    first = asyncio.gather(acks.ack(1), acks.ack(3))  # 1 as a run, 3 single
    await asyncio.sleep(0)  # one loop turn, not a wait
    await asyncio.sleep(0)  # one loop turn, not a wait
    second = asyncio.gather(acks.ack(2), acks.ack(4))
    await asyncio.sleep(0)  # one loop turn, not a wait
    release.set()
    await asyncio.gather(first, second)
    assert frames == [(1, True), (3, False), (4, True)]


async def test_an_unregistered_tag_is_acked_on_its_own() -> None:
    wire = Wire()
    acks = AckCoalescer(wire.send, gather=0)
    acks.delivered(1)
    await acks.ack(7)
    assert wire.frames == [(7, False)]


async def test_a_failed_frame_fails_every_ack_waiting_on_it() -> None:
    async def broken(tag: int, multiple: bool) -> None:
        raise ConnectionError("gone")

    acks = AckCoalescer(broken, gather=0)
    for tag in (1, 2):
        acks.delivered(tag)
    results = await asyncio.gather(acks.ack(1), acks.ack(2), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]


async def test_acks_asked_while_a_frame_is_sent_share_the_next_one() -> None:
    """A send that takes five loop turns, one ack asked each turn for 100 turns: acks wait
    for at most the frame in flight, not for a queue of flushes (one a turn, each taking
    five turns, grew without bound)."""
    frames: list[tuple[int, bool]] = []

    async def slow(tag: int, multiple: bool) -> None:
        for _ in range(5):
            await asyncio.sleep(0)  # one loop turn, not a wait
        frames.append((tag, multiple))

    acks = AckCoalescer(slow, gather=0)
    for tag in range(1, 101):
        acks.delivered(tag)
    waiting = []
    for tag in range(1, 101):
        waiting.append(asyncio.ensure_future(acks.ack(tag)))
        await asyncio.sleep(0)  # one loop turn, not a wait
    turns = 0
    while not all(w.done() for w in waiting):
        await asyncio.sleep(0)  # one loop turn, not a wait
        turns += 1
    assert turns <= 15
    assert frames[-1] == (100, True)
    assert all(multiple for _, multiple in frames) and len(frames) <= 100 // 5 + 2


async def test_a_round_waits_for_running_deliveries_only() -> None:
    """With enough other deliveries still running (`GATHER_MIN_OUTSTANDING`), a round first
    waits the gather time for their acks; with fewer (a worker running one task at a time, a
    prefork pool of two) it goes at once: there the wait would cost the small prefetch window
    more than the frames it saves."""
    wire = Wire()
    waits: list[float] = []
    waiting, finish = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        waiting.set()
        await finish.wait()

    acks = AckCoalescer(wire.send, gather=0.001, sleep=sleep)
    acks.delivered(1)
    await acks.ack(1)  # nothing else outstanding: no wait
    assert waits == [] and wire.frames == [(1, True)]
    few = range(2, 2 + GATHER_MIN_OUTSTANDING)  # itself and one fewer than the minimum
    for tag in few:
        acks.delivered(tag)
    await acks.ack(few[0])  # too few others running: no wait
    assert waits == [] and wire.frames[-1] == (few[0], True)
    many = range(few[-1] + 1, few[-1] + 2 + GATHER_MIN_OUTSTANDING)
    for tag in many:
        acks.delivered(tag)
    first = asyncio.ensure_future(acks.ack(many[0]))
    await waiting.wait()
    assert waits == [0.001]
    second = asyncio.ensure_future(acks.ack(many[1]))  # finishes within the window: joins it
    await asyncio.sleep(0)  # one loop turn, not a wait
    finish.set()
    await asyncio.gather(first, second)
    assert sorted(wire.frames[-2:]) == [(many[0], False), (many[1], False)]
