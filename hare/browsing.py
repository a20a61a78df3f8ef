"""Reading a queue without consuming it: take each message unsettled, then hand all back.

`hare dlq` browses dead-letter queues this way. The hand-back is explicit: every message
taken and not settled is rejected with requeue, one by one in the order it was taken, before
the transport closes. Closing the channel instead would hand them back too, but a quorum queue
returns a closed channel's messages in no particular order (30 dead letters came back
shuffled, on RabbitMQ 3.10.8 and 4.0.5 alike). Rejected in order, they go back where they were
in a classic queue, in front in a quorum queue on 4.x, and at the back on 3.x -- which keeps
the order too, because a browse stopped early takes the rest before it hands everything back.
Rejecting as it goes would not do: a requeued message is the next one `get` returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

from hare.core.envelope import Delivery, Properties
from hare.errors import BrokerError, DeadLetterQueueNotFound, HareError
from hare.transport.base import Transport

__all__ = ("HAND_BACK_WAIT", "Browser", "Progress", "browsing")

#: How long a hand-back waits at most for the queues to count what it handed back.
HAND_BACK_WAIT = 10.0

#: Called with (messages examined, messages in the queue when the browse began).
Progress = Callable[[int, int], None]


class Browser:
    """A transport of its own and the messages it took from queues and has not settled."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        # Stripped of body and properties: a browse of 100,000 messages keeps only tags.
        self._taken: dict[tuple[int, int], Delivery] = {}
        # Per queue browsed: messages there at the start, less those acked since.
        self._expected: dict[str, int] = {}

    async def count(self, queue: str) -> int:
        """How many messages `queue` holds; `DeadLetterQueueNotFound` if there is none."""
        try:
            return await self.transport.message_count(queue)
        except BrokerError as exc:
            if "NOT_FOUND" in str(exc):
                raise DeadLetterQueueNotFound(queue) from exc
            raise

    async def take(
        self, queue: str, progress: Progress | None = None
    ) -> AsyncGenerator[tuple[int, Delivery]]:
        """Take each message that was in `queue` at the start once, unsettled.

        Stopped early, it takes the rest as well (see the module's docstring).
        """
        total = await self.count(queue)
        self._expected[queue] = total
        position = 0
        try:
            for position in range(1, total + 1):
                delivery = await self._get(queue)
                if delivery is None:  # someone else took the rest
                    break
                yield position, delivery
                if progress is not None:
                    progress(position, total)
        except GeneratorExit:
            for _ in range(position, total):
                if await self._get(queue) is None:
                    break
            raise

    async def ack(self, delivery: Delivery) -> None:
        await self.transport.ack(delivery)
        self._taken.pop(_key(delivery), None)
        self._expected[delivery.queue] -= 1

    async def hand_back(self) -> None:
        """Reject every message taken and not settled, with requeue, in the order taken; then
        wait (up to `HAND_BACK_WAIT` seconds) until the queues count them again.

        A reject has no reply, and a quorum queue applies it through its log: read at once,
        its count still missed 344 of 1,000 dead letters just handed back (4.0.5, a busy
        machine), and the next browse would take only what it counted.
        """
        taken, self._taken = self._taken, {}
        for delivery in taken.values():
            await self.transport.reject(delivery, requeue=True)
        deadline = asyncio.get_running_loop().time() + HAND_BACK_WAIT
        for queue, expected in self._expected.items():
            while await self.transport.message_count(queue) < expected:
                if asyncio.get_running_loop().time() >= deadline:
                    break  # someone else took some meanwhile: nothing to wait for
                await asyncio.sleep(0.05)

    async def _get(self, queue: str) -> Delivery | None:
        delivery = await self.transport.get(queue)
        if delivery is not None:
            self._taken[_key(delivery)] = replace(delivery, body=b"", properties=Properties())
        return delivery


def _key(delivery: Delivery) -> tuple[int, int]:
    return id(delivery.handle), delivery.delivery_tag


@asynccontextmanager
async def browsing(transport: Transport) -> AsyncIterator[Browser]:
    """Connect `transport`; on the way out hand back what is unsettled, then close it.

    After a broker error the hand-back is left to the close (the connection may be gone).
    """
    await transport.connect()
    browser = Browser(transport)
    try:
        yield browser
    except HareError:
        raise
    except BaseException:  # e.g. GeneratorExit: a listing stopped early
        await browser.hand_back()
        raise
    else:
        await browser.hand_back()
    finally:
        await transport.close()
