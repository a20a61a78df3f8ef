"""Helpers for runtime tests on the memory transport: an app, a running worker, a ledger."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from hare import Hare, Worker
from hare.core.envelope import Delivery, Envelope, Properties
from hare.testing import ManualClock
from hare.transport.base import Transport

GOOD_BODY = b'[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'


#: One message of each kind a worker must dead-letter rather than run, with the reason it
#: must give: (reason, body, headers, content type). A task named `t.add` exists; `t.nope` not.
BAD_INPUTS: list[tuple[str, bytes, dict[str, Any], str]] = [
    ("undecodable", b"not json at all", {"task": "t.add", "id": "1"}, "application/json"),
    (
        "content-type-refused",
        b"\x80\x04K\x01.",
        {"task": "t.add", "id": "2"},
        "application/x-python-serialize",
    ),
    ("missing-header", GOOD_BODY, {"id": "3"}, "application/json"),
    ("missing-header", GOOD_BODY, {"task": "t.add"}, "application/json"),
    ("bad-body", b"[[1, 2], {}]", {"task": "t.add", "id": "5"}, "application/json"),
    ("unknown-task", GOOD_BODY, {"task": "t.nope", "id": "6"}, "application/json"),
]


#: Celery 5.7 stamping as its client puts it on the wire (`sig.stamp(visitor)`, the visitor
#: returning `{"mtask_id": "1234"}`): the headers of a stamped message...
STAMP_HEADERS: dict[str, Any] = {"stamped_headers": ["mtask_id"], "stamps": {"mtask_id": "1234"}}


def stamped_signature(task: str, *args: Any, immutable: bool = False) -> dict[str, Any]:
    """... and a stamped signature's dict (as a `link_error` carries it): the stamps are
    options, named by `stamped_headers`."""
    return {
        "task": task,
        "args": list(args),
        "kwargs": {},
        "options": {"stamped_headers": ["mtask_id"], "mtask_id": "1234"},
        "subtask_type": None,
        "immutable": immutable,
    }


class Ledger:
    """Every execution, by task id: duplicates show, unlike a counter's total."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
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


@asynccontextmanager
async def running_worker(
    app: Hare, *, queues: Sequence[str] | None = None, concurrency: int = 8
) -> AsyncIterator[Worker]:
    worker = Worker(app, queues=queues, concurrency=concurrency)
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


def memory_app(clock: ManualClock | None = None, **settings: Any) -> Hare:
    return Hare("tests", broker="memory://", clock=clock or ManualClock(), environ={}, **settings)


async def publish_raw(
    transport: Transport,
    queue: str,
    body: bytes,
    *,
    headers: dict[str, Any] | None = None,
    content_type: str | None = "application/json",
    expiration: str | None = None,
) -> None:
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
    got = []
    while (delivery := await transport.get(queue)) is not None:
        await transport.ack(delivery)
        got.append(delivery)
    return got


async def until(predicate: Callable[[], bool], clock: ManualClock, rounds: int = 200) -> None:
    """Let the loop run (no clock movement) until `predicate` holds."""
    for _ in range(rounds):
        if predicate():
            return
        await clock.yield_control(4)
    raise AssertionError("condition not reached")
