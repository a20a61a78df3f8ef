"""hare: `noop.adelay()` / `noop.delay()` to publish, `hare worker` to drain.

The worker runs the tasks of `benchmarks.bench_app` (async `noop`, sync `noop_sync`, and
`flaky`, which asks for one retry), its app configured by `HARE_BROKER_URL` and `BENCH_QUEUE`
in the worker's environment. The producer declares the same task names on an app of its own,
as a producer importing the task definitions would.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from benchmarks import measure
from benchmarks.measure import WorkerSpec
from benchmarks.procedures import Enqueue, System
from hare import Hare, Task

#: `BENCH_CLASSIC=1` (the `hare-classic` variant): `queue_type="classic"` instead of quorum.
CLASSIC = os.environ.get("BENCH_CLASSIC") == "1"
QUEUE = "hare.classic.q" if CLASSIC else "hare.q"
QUEUE_TYPE = "classic" if CLASSIC else "quorum"


async def noop(intended: float) -> None:
    """Producer-side declaration (the worker runs `benchmarks.bench_app`'s)."""


async def flaky(intended: float) -> None:
    """Producer-side declaration (the worker runs `benchmarks.bench_app`'s)."""


def noop_sync(intended: float) -> None:
    """Producer-side declaration (the worker runs `benchmarks.bench_app`'s)."""


class HareSystem(System):
    name = "hare-classic" if CLASSIC else "hare"
    queues = [QUEUE]
    hold_queues = [QUEUE]

    def __init__(self, url: str, quick: bool) -> None:
        self.url = url
        self.app = Hare("bench", broker=url, environ={}, default_queue=QUEUE, queue_type=QUEUE_TYPE)
        self.tasks: dict[str, Task[Any, Any]] = {
            fn.__name__: self.app.task(name=f"bench.{fn.__name__}")(fn)
            for fn in (noop, flaky, noop_sync)
        }
        env = {"HARE_BROKER_URL": url, "BENCH_QUEUE": QUEUE, "BENCH_QUEUE_TYPE": QUEUE_TYPE}

        def _worker(key: str, label: str, *extra: str, task: str = "noop") -> WorkerSpec:
            command = [sys.executable, "-m", "hare", "worker", "benchmarks.bench_app:app"]
            command += ["-Q", QUEUE, *extra, "--loglevel", "warning"]
            return WorkerSpec(key, label, command, env, task=task)

        self.enqueues = [
            Enqueue("pipelined", "adelay(), 1000 in flight", self._windowed),
            Enqueue("batch", "aenqueue_many(), window 1000", self._batch),
            Enqueue("sequential", "adelay(), one at a time", self._sequential, sequential=True),
            Enqueue("sync", "delay() from sync code, one at a time", self._sync, sequential=True),
        ]
        self.drains = [
            _worker("async-1p", "async task, -c 256", "-c", "256"),
            _worker("sync-1p", "sync task, -c 32 (threads)", "-c", "32", task="noop_sync"),
            _worker(
                "async-2p",
                "async task, --processes 2 -c 256",
                "-c",
                "256",
                "--processes",
                "2",
            ),
        ]
        self.delay_worker = self.hold_worker = _worker(
            "ladder", "delay ladder, -c 256", "-c", "256"
        )
        self.soak_worker = self.drains[0]

    def _windowed(self, n: int, task: str) -> float:
        send = self.tasks[task].adelay

        async def go() -> float:
            await send(0.0)
            started = time.perf_counter()
            await measure.windows(n, lambda i: send(0.0))
            elapsed = time.perf_counter() - started
            await self.app.aclose()
            return elapsed

        return asyncio.run(go())

    def _batch(self, n: int, task: str) -> float:
        noop = self.tasks[task]

        async def go() -> float:
            await noop.adelay(0.0)
            calls = [noop.call(0.0) for _ in range(n)]
            started = time.perf_counter()
            outcomes = await self.app.aenqueue_many(calls, window=1000)
            elapsed = time.perf_counter() - started
            await self.app.aclose()
            failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
            if failed:
                raise failed[0]
            return elapsed

        return asyncio.run(go())

    def _sequential(self, n: int, task: str) -> float:
        send = self.tasks[task].adelay

        async def go() -> float:
            await send(0.0)
            started = time.perf_counter()
            for _ in range(n):
                await send(0.0)
            elapsed = time.perf_counter() - started
            await self.app.aclose()
            return elapsed

        return asyncio.run(go())

    def _sync(self, n: int, task: str) -> float:
        send = self.tasks[task].delay
        send(0.0)
        started = time.perf_counter()
        for _ in range(n):
            send(0.0)
        elapsed = time.perf_counter() - started
        self.app.close()
        return elapsed

    def purge(self) -> None:
        asyncio.run(measure.purge(self.url, self.queues))

    def send_now(self, intended: float) -> None:
        async def go() -> None:
            await self.tasks["noop"].adelay(intended)
            await self.app.aclose()

        asyncio.run(go())

    def send_paced(self, rate: float, total: int) -> None:
        send = self.tasks["noop"].adelay

        async def go() -> None:
            await measure.apace(rate, total, send)
            await self.app.aclose()

        asyncio.run(go())

    def schedule(self, delays: list[float]) -> None:
        noop = self.tasks["noop"]

        async def one(d: float) -> None:
            await noop.aapply_async((time.time() + d,), countdown=d)

        async def go() -> None:
            await measure.windows(len(delays), lambda i: one(delays[i]), width=200)
            await self.app.aclose()

        asyncio.run(go())


def make(url: str, quick: bool) -> System:
    return HareSystem(url, quick)
