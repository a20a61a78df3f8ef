"""Taskiq 0.13 with taskiq-aio-pika 0.6: `await noop.kiq()` to publish, `taskiq worker` to drain.

Also the broker module the worker imports (`taskiq worker
benchmarks.systems.taskiq_bench:broker`); `TASKIQ_QOS` sets the worker's prefetch (library
default 10). Quorum queues (the library's default). Delays use its TTL delay queue (the
delayed-message-exchange plugin is not installed). Taskiq's worker uses uvloop when installed,
as it is in the peers' venv. Runs in the peers' venv.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from taskiq import Context, TaskiqDepends  # type: ignore[import-not-found,unused-ignore]
from taskiq.middlewares import SimpleRetryMiddleware  # type: ignore[import-not-found,unused-ignore]
from taskiq_aio_pika import (  # type: ignore[import-not-found,unused-ignore]
    AioPikaBroker,
    Queue,
    QueueType,
)

from benchmarks import measure
from benchmarks.measure import WorkerSpec
from benchmarks.procedures import Enqueue, System

URL = os.environ.get("BENCH_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = "taskiq"
DELAY_QUEUE = "taskiq.delay"

broker = AioPikaBroker(
    URL,
    qos=int(os.environ.get("TASKIQ_QOS", "10")),
    task_queues=[Queue(name=QUEUE, type=QueueType.QUORUM)],
    delay_queue=Queue(name=DELAY_QUEUE, type=QueueType.QUORUM),
).with_middlewares(SimpleRetryMiddleware(default_retry_count=3))


async def _noop(intended: float) -> None:
    measure.record(intended)


async def _flaky(intended: float, context: Context = TaskiqDepends()) -> None:  # noqa: B008
    measure.record(intended)
    if int(context.message.labels.get("_retries", 0)) == 0:
        raise RuntimeError("first attempt fails")


noop = broker.task(task_name="noop")(_noop)
flaky = broker.task(task_name="flaky", retry_on_error=True)(_flaky)
TASKS: dict[str, Any] = {"noop": noop, "flaky": flaky}


def _worker(key: str, label: str, workers: int) -> WorkerSpec:
    command = [
        measure.bin_path("taskiq"),
        "worker",
        "benchmarks.systems.taskiq_bench:broker",
        "--workers",
        str(workers),
        "--log-level",
        "WARNING",
        "--max-async-tasks",
        "1000",
    ]
    return WorkerSpec(key, label, command, {"TASKIQ_QOS": "256"})


async def _started(work: Any) -> Any:
    await broker.startup()
    try:
        return await work()
    finally:
        await broker.shutdown()


class TaskiqSystem(System):
    name = "taskiq"
    queues = [QUEUE, DELAY_QUEUE]
    hold_queues = [QUEUE, DELAY_QUEUE]

    def __init__(self, url: str, quick: bool) -> None:
        self.enqueues = [
            Enqueue("pipelined", "kiq(), 1000 in flight", self._windowed),
            Enqueue(
                "sequential",
                "await kiq(), one at a time (confirms)",
                self._sequential,
                sequential=True,
            ),
        ]
        self.drains = [
            _worker("1p", "--workers 1, qos 256, max-async 1000", 1),
            _worker("2p", "--workers 2, qos 256, max-async 1000", 2),
        ]
        self.delay_worker = self.hold_worker = WorkerSpec(
            "delays",
            "TTL delay queue, --workers 2, qos 10",
            [measure.bin_path("taskiq"), "worker", "benchmarks.systems.taskiq_bench:broker"],
        )

    def _timed(self, n: int, task: str, windowed: bool) -> float:
        kiq = TASKS[task].kiq

        async def go() -> float:
            await kiq(0.0)
            started = time.perf_counter()
            if windowed:
                await measure.windows(n, lambda i: kiq(0.0))
            else:
                for _ in range(n):
                    await kiq(0.0)
            return time.perf_counter() - started

        return float(asyncio.run(_started(go)))

    def _windowed(self, n: int, task: str) -> float:
        return self._timed(n, task, windowed=True)

    def _sequential(self, n: int, task: str) -> float:
        return self._timed(n, task, windowed=False)

    def purge(self) -> None:
        asyncio.run(measure.purge(URL, self.queues))

    def send_now(self, intended: float) -> None:
        asyncio.run(_started(lambda: noop.kiq(intended)))

    def send_paced(self, rate: float, total: int) -> None:
        asyncio.run(_started(lambda: measure.apace(rate, total, noop.kiq)))

    def schedule(self, delays: list[float]) -> None:
        async def one(d: float) -> None:
            await noop.kicker().with_labels(delay=d).kiq(time.time() + d)

        asyncio.run(_started(lambda: measure.windows(len(delays), lambda i: one(delays[i]), 100)))


def make(url: str, quick: bool) -> System:
    return TaskiqSystem(url, quick)
