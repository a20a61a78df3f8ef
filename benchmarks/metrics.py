"""What the worker's metrics cost per task: a no-op async task drained on the memory broker
by a worker with and without metrics, and the metric updates of one task alone.

    python -m benchmarks metrics [--n 5000] [--reps 5]

Drain: N messages are published to the memory broker first, then a worker (concurrency 64)
runs them; the time from its start until all N are settled, per task, with metrics (a fresh
registry, the worker's measured transport) and without, in alternating reps. The difference of
the medians is the cost of metrics per task; the memory broker has no network, so it is the
largest share of a task's own cost it can be. Updates alone: what one succeeded task does to
the metrics (received, started, succeeded, the running gauge, the run-time histogram), timed
in a loop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from prometheus_client import CollectorRegistry

from hare import Hare, Worker
from hare.core.envelope import Delivery, Properties
from hare.core.message import Message
from hare.core.outcome import Succeeded
from hare.core.retry import Ack
from hare.metrics.collector import MetricsMiddleware
from hare.metrics.transport import MeasuredTransport
from hare.testing import memory_app
from hare.worker.request import Request, request_of
from hare.worker.verdict import Verdict


def _app() -> Hare:
    app = memory_app(default_queue="bench")

    @app.task(name="bench.noop")
    async def noop(i: int) -> None:
        return None

    return app


async def drain(n: int, metered: bool) -> float:
    """Seconds per task to drain `n` no-ops."""
    app = _app()
    for i in range(n):
        await app.asend_task("bench.noop", (i,))
    transport = None
    metrics = None
    if metered:
        metrics = MetricsMiddleware(app, CollectorRegistry())
        transport = MeasuredTransport(app.make_transport(), metrics.families)
    worker = Worker(app, queues=["bench"], concurrency=64, transport=transport)
    if metrics is not None:
        metrics.install(worker)
    started = time.perf_counter()
    running = asyncio.create_task(worker.run())
    while worker.processed < n or worker.in_flight:  # noqa: ASYNC110 - polled, as a client would
        await asyncio.sleep(0.001)
    took = time.perf_counter() - started
    worker.stop()
    await running
    if metrics is not None:
        metrics.uninstall()
    await app.aclose()
    return took / n


def updates(n: int) -> float:
    """Seconds of metric updates for one succeeded task."""
    app = _app()
    metrics = MetricsMiddleware(app, CollectorRegistry())
    metrics.nodename = "bench"
    received = metrics._received
    request = _request(app)
    verdict = _verdict()
    started = time.perf_counter()
    for _ in range(n):
        received(request=request)
        metrics.run_started(request)
        metrics.run_ended(request, verdict, 0.001)
    return (time.perf_counter() - started) / n


def _request(app: Hare) -> Request:
    message = Message(task="bench.noop", id="1")
    delivery = Delivery(
        queue="bench",
        body=b"",
        properties=Properties(),
        exchange="",
        routing_key="bench",
        delivery_tag=1,
        redelivered=False,
    )
    return request_of(message, delivery, "bench")


def _verdict() -> Verdict:
    return Verdict(Succeeded(None), Ack())


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks metrics")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    plain, metered = [], []
    for _ in range(args.reps):
        plain.append(asyncio.run(drain(args.n, metered=False)))
        metered.append(asyncio.run(drain(args.n, metered=True)))
    off, on = statistics.median(plain), statistics.median(metered)
    alone = statistics.median(updates(args.n * 4) for _ in range(args.reps))
    print(f"drain, no-op async task, memory broker, n={args.n}, reps={args.reps} (medians)")
    print(f"  without metrics: {off * 1e6:.1f} us/task")
    print(f"  with metrics:    {on * 1e6:.1f} us/task ({(on - off) * 1e6:+.1f} us)")
    print(f"metric updates of one succeeded task alone: {alone * 1e6:.1f} us")
