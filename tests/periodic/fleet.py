"""Worker "pods" of one app on one memory broker and one manual clock, and their ledger."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hare import Hare, Worker
from hare.context import current
from hare.core.headers import PERIODIC_HEADER
from hare.periodic.scheduler import Scheduler
from hare.periodic.schedules import every
from hare.testing import ManualClock
from hare.transport.memory.transport import MemoryBroker, MemoryTransport

__all__ = ("START", "Fleet")

START = 1_800_000_000.0  # a multiple of 10 s, so `every(seconds=10)` fires at START + 10k


class Fleet:
    """Apps ("pods") sharing one memory broker and one clock, each with its own ledger."""

    def __init__(self) -> None:
        self.clock = ManualClock(START)
        self.broker = MemoryBroker(clock=self.clock)
        self.runs: list[tuple[str, float]] = []  # (pod, when it ran)
        #: The occurrence each run was for (seconds after START), from its message.
        self.fired: list[int] = []

    def app(self, pod: str, *, interval: float = 10, generation: int = 0, **periodic: Any) -> Hare:
        app = Hare(
            "fleet",
            broker="memory://",
            clock=self.clock,
            environ={},
            default_queue="work",
            generation=generation,
            watchdog_interval=60,
        )

        @app.periodic(every(seconds=interval), name="fleet.tick", **periodic)
        async def tick() -> None:
            self.runs.append((pod, self.clock.time()))
            running = current()
            if running is not None:
                _, occurrence = running.message.headers[PERIODIC_HEADER]
                self.fired.append(round(occurrence / 1000 - START))

        return app

    def worker(self, app: Hare, transport: MemoryTransport | None = None) -> Worker:
        # drain_timeout=0: a run in progress at the end of a test is not waited for (its
        # clock would have to move)
        transport = transport or MemoryTransport(self.broker, clock=self.clock)
        return Worker(app, transport=transport, drain_timeout=0)

    @asynccontextmanager
    async def pod(
        self, app: Hare, transport: MemoryTransport | None = None
    ) -> AsyncIterator[Worker]:
        worker = self.worker(app, transport)
        running = asyncio.create_task(worker.run())
        await worker.wait_ready()
        await self.clock.yield_control()  # a token reaches the leader, which offers ticks
        try:
            yield worker
        finally:
            worker.stop()
            await running

    def occurrences(self) -> Counter[float]:
        return Counter(round(t - START) for _, t in self.runs)


def scheduler(worker: Worker) -> Scheduler:
    """The worker's part in the schedules (it runs, and keeps them)."""
    parts = worker._parts
    assert parts is not None and parts.scheduler is not None, "the worker runs no schedules"
    return parts.scheduler


def leaders(workers: list[Worker]) -> list[Worker]:
    """The workers that lead the schedules now."""
    return [w for w in workers if scheduler(w).election.epoch is not None]
