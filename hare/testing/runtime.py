"""Helpers for testing a hare app in-process: a `memory://` app, a running worker, a ledger.

Everything here runs on the memory transport, so a test needs no broker; with a
`ManualClock` it needs no real waiting either:

    app = memory_app()                       # memory:// broker, a ManualClock, no environ
    ledger = Ledger()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        ledger.record("add", x + y)
        return x + y

    async def test_add() -> None:
        ledger.bind()
        async with running_worker(app):
            await add.adelay(2, 3)
            await ledger.wait_for(1)
        assert ledger.runs == [("add", 5)]
        await app.aclose()

`publish_raw` puts bytes on a queue as any producer could (a Celery client, a broken one);
`drain` takes what a queue holds (a dead-letter queue, a reply queue); `until` lets the loop
run, without moving the clock, until a condition holds; `eventually` polls in real time, for
what runs outside the loop (sync tasks in threads, a real broker).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from hare.app import Hare
from hare.core.envelope import Delivery, Envelope, Properties
from hare.testing.clock import ManualClock
from hare.transport.base import Transport
from hare.worker import Worker

__all__ = (
    "Ledger",
    "drain",
    "eventually",
    "memory_app",
    "publish_raw",
    "running_worker",
    "until",
)


def memory_app(clock: ManualClock | None = None, *, main: str = "tests", **settings: Any) -> Hare:
    """An app on the in-process `memory://` broker, timed by `clock` (a new `ManualClock` by
    default), that reads no `HARE_*` environment variables; `settings` as `Hare` takes them."""
    return Hare(main, broker="memory://", clock=clock or ManualClock(), environ={}, **settings)


@asynccontextmanager
async def running_worker(
    app: Hare, *, queues: Sequence[str] | None = None, concurrency: int = 8, **options: Any
) -> AsyncIterator[Worker]:
    """Run a `Worker` for `app` on the current loop while the block runs (`options` are the
    worker's other arguments, e.g. `pool="prefork"`).

    Entered once the worker is ready (its queues declared, its consumers started); if the
    worker stops before that, what stopped it is raised. Leaving the block stops the worker
    and waits for it to finish."""
    worker = Worker(app, queues=queues, concurrency=concurrency, **options)
    task = asyncio.create_task(worker.run())
    ready = asyncio.create_task(worker.wait_ready())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raise what made the worker stop
    try:
        yield worker
    finally:
        worker.stop()
        await task


class Ledger:
    """Every execution, by task id: duplicates show, unlike a counter's total.

    Tasks call `record` (from the loop or from a worker thread); the test calls `bind` on its
    loop first, then `wait_for` the number of runs it expects."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        """Attach to the running loop, the one `wait_for` will be awaited on."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def record(self, key: str, value: Any = None) -> None:
        """Callable from the loop or from a worker thread."""
        with self._lock:
            self.runs.append((key, value))
        if self._loop is not None and self._changed is not None:
            event = self._changed
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                event.set()
            else:
                self._loop.call_soon_threadsafe(event.set)

    def counts(self) -> Counter[str]:
        """How many runs each key has."""
        with self._lock:
            return Counter(key for key, _ in self.runs)

    async def wait_for(self, n: int, within: float = 10.0) -> None:
        """Wait until at least `n` runs are recorded (`within` only guards against hangs)."""
        assert self._changed is not None, "call bind() on the loop first"
        async with asyncio.timeout(within):
            while len(self.runs) < n:
                self._changed.clear()
                if len(self.runs) >= n:
                    return
                await self._changed.wait()


async def publish_raw(
    transport: Transport,
    queue: str,
    body: bytes,
    *,
    headers: dict[str, Any] | None = None,
    content_type: str | None = "application/json",
    expiration: str | None = None,
) -> None:
    """Publish `body` to `queue` through the default exchange, as any producer could."""
    await transport.publish(
        Envelope(
            exchange="",
            routing_key=queue,
            body=body,
            properties=Properties(
                content_type=content_type,
                content_encoding="utf-8",
                headers=headers or {},
                expiration=expiration,
            ),
        )
    )


async def drain(transport: Transport, queue: str) -> list[Delivery]:
    """Take (and ack) every message in `queue`."""
    got: list[Delivery] = []
    while (delivery := await transport.get(queue)) is not None:
        await transport.ack(delivery)
        got.append(delivery)
    return got


async def until(predicate: Callable[[], bool], clock: ManualClock, rounds: int = 200) -> None:
    """Let the loop run (no clock movement) until `predicate` holds; fail after `rounds`
    passes of `clock.yield_control`."""
    for _ in range(rounds):
        if predicate():
            return
        await clock.yield_control(4)
    raise AssertionError("condition not reached")


async def eventually(
    check: Callable[[], Any], *, within: float = 20.0, interval: float = 0.02
) -> Any:
    """Poll `check` (a function, or an async one) in real time until it returns
    a truthy value, and return that; fail after `within` seconds.

    For what happens outside the loop's control: sync tasks in worker threads or processes, a
    real broker. On the memory transport with a `ManualClock`, prefer `until`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
