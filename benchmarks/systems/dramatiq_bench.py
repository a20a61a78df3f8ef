"""Dramatiq 2.2 with RabbitMQ (pika): `noop.send()` to publish, `dramatiq` to drain.

Also the broker module the worker imports (`dramatiq benchmarks.systems.dramatiq_bench`).
Dramatiq publishes without confirms unless `confirm_delivery=True`; both are measured. Its
delays go to `default.DQ`, whose messages the worker holds until due. Runs in the peers' venv.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import dramatiq  # type: ignore[import-not-found,unused-ignore]
from dramatiq.brokers.rabbitmq import (  # type: ignore[import-not-found,unused-ignore]
    RabbitmqBroker,
)
from dramatiq.middleware import CurrentMessage  # type: ignore[import-not-found,unused-ignore]

from benchmarks import measure
from benchmarks.measure import WorkerSpec
from benchmarks.procedures import Enqueue, System

URL = os.environ.get("BENCH_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUES = ["default", "default.DQ", "default.XQ"]


def make_broker(confirm: bool) -> Any:
    broker = RabbitmqBroker(url=URL, confirm_delivery=confirm)
    broker.add_middleware(CurrentMessage())

    def noop(intended: float) -> None:
        measure.record(intended)

    def flaky(intended: float) -> None:
        measure.record(intended)
        if CurrentMessage.get_current_message().options.get("retries", 0) == 0:
            raise dramatiq.Retry(delay=0)

    dramatiq.actor(noop, actor_name="noop", max_retries=0, broker=broker)
    dramatiq.actor(flaky, actor_name="flaky", max_retries=3, broker=broker)
    return broker


broker = make_broker(confirm=False)
confirming = make_broker(confirm=True)
dramatiq.set_broker(broker)


def _worker(key: str, label: str, processes: int, threads: int, prefetch: int | None) -> WorkerSpec:
    command = [
        measure.bin_path("dramatiq"),
        "benchmarks.systems.dramatiq_bench",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    env = {"dramatiq_queue_prefetch": str(prefetch)} if prefetch else {}
    return WorkerSpec(key, label, command, env)


class DramatiqSystem(System):
    name = "dramatiq"
    queues = QUEUES
    hold_queues = ["default", "default.DQ"]

    def __init__(self, url: str, quick: bool) -> None:
        self.enqueues = [
            Enqueue(
                "default", "send(), no confirms (default)", lambda n, t: self._send(broker, n, t)
            ),
            Enqueue(
                "confirms",
                "send(), confirm_delivery",
                lambda n, t: self._send(confirming, n, t),
                sequential=True,
            ),
        ]
        self.drains = [
            _worker("1p", "-p 1 -t 8, prefetch 256", 1, 8, 256),
            _worker("2p", "-p 2 -t 8, prefetch 256", 2, 8, 256),
        ]
        self.delay_worker = self.hold_worker = _worker(
            "delays", "delay queue, -p 1 -t 8", 1, 8, None
        )

    @staticmethod
    def _send(which: Any, n: int, task: str) -> float:
        send = which.get_actor(task).send
        send(0.0)
        started = time.perf_counter()
        for _ in range(n):
            send(0.0)
        return time.perf_counter() - started

    def purge(self) -> None:
        asyncio.run(measure.purge(URL, QUEUES))

    def send_now(self, intended: float) -> None:
        broker.get_actor("noop").send(intended)

    def send_paced(self, rate: float, total: int) -> None:
        measure.pace(rate, total, broker.get_actor("noop").send)

    def schedule(self, delays: list[float]) -> None:
        noop = broker.get_actor("noop")
        for d in delays:
            noop.send_with_options(args=(time.time() + d,), delay=int(d * 1000))


def make(url: str, quick: bool) -> System:
    return DramatiqSystem(url, quick)
