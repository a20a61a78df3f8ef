"""Celery 5.7 with py-amqp: `noop.delay()` to publish, `celery worker` to drain.

Also the app module the worker imports (`celery -A benchmarks.systems.celery_bench`). With
`CELERY_QUORUM=1` (system `celery-native`) the queue is a quorum queue behind a topic exchange,
which turns on Celery's native delayed delivery: a countdown travels through 28 TTL queues
(`celery_delayed_*`) instead of being held unacked by the worker. Runs in the peers' venv.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from celery import Celery

from benchmarks import measure
from benchmarks.measure import WorkerSpec
from benchmarks.procedures import Enqueue, System

QUORUM = os.environ.get("CELERY_QUORUM") == "1"
QUEUE = "celery_quorum" if QUORUM else "celery"
URL = "py" + os.environ.get("BENCH_URL", "amqp://guest:guest@127.0.0.1:5672/")


def make_app(**options: Any) -> Celery:
    app = Celery("celery_bench", broker=URL)
    app.conf.update(
        task_ignore_result=True,
        result_backend=None,
        worker_prefetch_multiplier=int(os.environ.get("CELERY_PM", "4")),
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        **options,
    )
    if QUORUM:
        app.conf.update(
            task_default_queue=QUEUE,
            task_default_queue_type="quorum",
            task_default_exchange=QUEUE,
            task_default_exchange_type="topic",
            task_default_routing_key=QUEUE,
        )

    def noop(intended: float) -> None:
        measure.record(intended)

    def flaky(self: Any, intended: float) -> None:
        measure.record(intended)
        if self.request.retries == 0:
            raise self.retry(countdown=0)

    app.task(name="bench.noop", shared=False)(noop)
    app.task(name="bench.flaky", bind=True, shared=False)(flaky)
    return app


app = make_app()
confirming = make_app(broker_transport_options={"confirm_publish": True})


def _worker(
    key: str, label: str, pool: str, concurrency: int | None, multiplier: int
) -> WorkerSpec:
    options = ["-P", pool, *(["-c", str(concurrency)] if concurrency else [])]
    # Its own node name: the classic and the native-delay workers may run at once.
    node = f"{'native' if QUORUM else 'classic'}@%h"
    command = measure.celery_worker_command(
        "benchmarks.systems.celery_bench", QUEUE, node, *options
    )
    # Its solo pool takes ~6 s to act on any signal: killed after 2 s (the queue is purged).
    return WorkerSpec(key, label, command, {"CELERY_PM": str(multiplier)}, grace=2.0)


class CelerySystem(System):
    name = "celery-native" if QUORUM else "celery"
    queues = [QUEUE]
    hold_queues = [QUEUE]

    def __init__(self, url: str, quick: bool) -> None:
        self.enqueues = [
            Enqueue(
                "default", "delay(), no confirms (default)", lambda n, t: self._send(app, n, t)
            ),
            Enqueue(
                "confirms",
                "delay(), confirm_publish",
                lambda n, t: self._send(confirming, n, t),
                sequential=True,
            ),
        ]
        # Solo was its best in the peers' baseline runs; the others only in a full run.
        self.drains = [_worker("solo", "solo pool, prefetch 64", "solo", None, 64)]
        if not quick:
            self.drains.append(
                _worker("prefork-2", "prefork -c 2, multiplier 64", "prefork", 2, 64)
            )
            self.drains.append(
                _worker("threads-8", "threads -c 8, multiplier 64", "threads", 8, 64)
            )
        # As in the peers' baseline: prefork -c 2 with the default multiplier (4).
        self.delay_worker = self.hold_worker = _worker("delays", "prefork -c 2", "prefork", 2, 4)
        self.delay_worker.label = (
            "native delayed delivery (quorum), prefork -c 2"
            if QUORUM
            else "countdown held by the worker (classic), prefork -c 2"
        )

    @staticmethod
    def _send(which: Celery, n: int, task: str) -> float:
        send = which.tasks[f"bench.{task}"].delay
        send(0.0)
        started = time.perf_counter()
        for _ in range(n):
            send(0.0)
        return time.perf_counter() - started

    def purge(self) -> None:
        asyncio.run(measure.purge(os.environ["BENCH_URL"], [QUEUE]))

    def send_now(self, intended: float) -> None:
        app.tasks["bench.noop"].delay(intended)

    def send_paced(self, rate: float, total: int) -> None:
        measure.pace(rate, total, app.tasks["bench.noop"].delay)

    def schedule(self, delays: list[float]) -> None:
        noop = app.tasks["bench.noop"]
        for d in delays:
            noop.apply_async((time.time() + d,), countdown=d)


def make(url: str, quick: bool) -> System:
    if QUORUM:  # the worker declares this topology at boot; make sure it exists before a send
        from kombu.transport.native_delayed_delivery import (
            declare_native_delayed_delivery_exchanges_and_queues,
        )

        with app.connection_for_write() as connection:
            declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
    return CelerySystem(url, quick)
