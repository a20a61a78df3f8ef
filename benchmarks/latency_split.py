"""`python -m benchmarks latency_split [--n 2500] [--reps 3]`: where hare's end-to-end latency
goes, publisher or worker.

Four pairings on one classic queue (declared as the raw loop declares it), at 500 tasks/s:
hare's `adelay()` or a raw aiormq publish of hare's exact message (with confirms), each
consumed by a `hare worker -c 256` or by the raw consume-and-ack loop. Each pairing starts its
consumer, waits until a first message has run, then publishes `n` messages paced at the rate;
latency is a task's start minus the time its publish began. Prints p50 and p90 per pairing and
repetition: the raw/raw row is the floor, raw publisher with hare's worker is the worker's
share, hare's publisher with the raw loop is the publisher's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import aiormq

from benchmarks import broker, measure
from benchmarks.core import celery_properties
from benchmarks.measure import WorkerSpec, read_records, wait_count, worker

os.environ["BENCH_CLASSIC"] = "1"  # before the raw system reads it: its classic queue

from benchmarks.systems import raw

QUEUE = raw.QUEUE


def _consumer(kind: str, url: str) -> WorkerSpec:
    env = {
        "BENCH_URL": url,
        "HARE_BROKER_URL": url,
        "BENCH_QUEUE": QUEUE,
        "BENCH_QUEUE_TYPE": "classic",
        "BENCH_CLASSIC": "1",
    }
    if kind == "raw":
        command = [sys.executable, "-m", "benchmarks.systems.raw"]
    else:
        command = [sys.executable, "-m", "hare", "worker", "benchmarks.bench_app:app"]
        command += ["-Q", QUEUE, "-c", "256", "--loglevel", "warning"]
    return WorkerSpec(kind, kind, command, env)


async def _publish(kind: str, url: str, record_file: str, n: int, rate: float) -> None:
    send: Callable[[float], Awaitable[object]]
    close: Callable[[], Awaitable[object]]
    if kind == "hare":
        from hare import Hare

        app = Hare("bench", broker=url, environ={}, default_queue=QUEUE, queue_type="classic")

        @app.task(name="bench.noop")
        async def noop(intended: float) -> None: ...

        send, close = noop.adelay, app.aclose
    else:
        from hare.core import protocol
        from hare.core.message import Message

        connection = await aiormq.connect(url)
        channel = await connection.channel(publisher_confirms=True)

        async def send(intended: float) -> None:
            message = Message(
                id=str(uuid.uuid4()), task="bench.noop", args=(intended,), origin="gen1@bench"
            )
            body, properties = protocol.encode(message, now=time.time())
            headers = dict(properties.headers)
            await channel.basic_publish(
                body, routing_key=QUEUE, properties=celery_properties(headers)
            )

        close = connection.close
    await send(time.time())  # warm-up: the consumer is consuming once it has run
    await asyncio.to_thread(wait_count, record_file, 1, 60)
    await asyncio.sleep(1.0)
    await measure.apace(rate, n, send)
    await close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks latency_split")
    parser.add_argument("--n", type=int, default=2500)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    log = "/tmp/hare-latency-split.log"
    with broker.private_vhost() as url:

        async def declare() -> None:
            connection = await aiormq.connect(url)
            channel = await connection.channel()
            await channel.queue_declare(QUEUE, durable=True, arguments=raw.ARGUMENTS)
            await connection.close()

        asyncio.run(declare())
        for rep in range(args.reps):
            for publisher in ("raw", "hare"):
                for consumer in ("raw", "hare"):
                    asyncio.run(measure.purge(url, [QUEUE]))
                    with worker(_consumer(consumer, url), log) as running:
                        asyncio.run(
                            _publish(publisher, url, running.record_file, args.n, args.rate)
                        )
                        wait_count(running.record_file, args.n + 1, timeout=60)
                        records = read_records(running.record_file)[1:]
                    late = sorted((actual - intended) * 1000 for intended, actual in records)
                    p90 = late[int(len(late) * 0.9)] if late else float("nan")
                    median = statistics.median(late) if late else float("nan")
                    print(
                        f"rep {rep} publisher={publisher:4} consumer={consumer:4} "
                        f"n={len(late)} p50={median:.2f} ms p90={p90:.2f} ms",
                        flush=True,
                    )
