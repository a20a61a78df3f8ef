"""Delay precision and what a worker holds while tasks wait in the ladder.

    python -m benchmarks delays [--n 1000] [--reps 3] [--hold 10000]

lateness: a `hare worker` subprocess is running; the driver schedules `n` tasks with delays
uniform over 1-10 s (seeded, in random order, `countdown=`); each task records its intended and
actual start. Lateness = actual - intended. While they wait, `rabbitmqctl list_queues` is read
every 0.5 s for the worker's queue: how many readings showed unacknowledged messages.

hold: with the worker running, schedule `hold` tasks an hour ahead; read the worker's RSS and
the queue's unacked count before, and 20 s after. The private vhost is deleted afterwards, so
the scheduled messages do not outlive the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

from benchmarks import broker
from benchmarks.bench_app import read_records
from hare import Hare

QUEUE = "hare-bench.delays"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def schedule(url: str, delays: list[float]) -> float:
    app = Hare("bench", broker=url, environ={}, default_queue=QUEUE)
    published = time.time()
    for start in range(0, len(delays), 100):
        await asyncio.gather(
            *(
                app.asend_task("bench.noop", [time.time() + d], countdown=d)
                for d in delays[start : start + 100]
            )
        )
    await app.aclose()
    return published


def lateness_round(url: str, n: int, seed: int, *, sample: bool = True) -> dict[str, Any]:
    rng = random.Random(seed)
    delays = [rng.uniform(1.0, 10.0) for _ in range(n)]
    with broker.hare_worker(url, QUEUE) as worker:
        asyncio.run(_probe(url))
        if broker.wait_for_records(worker.record_file, 1, 30) < 1:
            raise RuntimeError("the worker did not start")
        asyncio.run(schedule(url, delays))
        readings, with_unacked, max_unacked = 0, 0, 0
        deadline = time.monotonic() + 40
        while broker.wait_for_records(worker.record_file, n + 1, 0) < n + 1:
            if time.monotonic() > deadline:
                break
            if sample:
                _, unacked = broker.queue_counts(QUEUE)
                readings += 1
                with_unacked += unacked > 0
                max_unacked = max(max_unacked, unacked)
            time.sleep(0.5)
        records = read_records(worker.record_file)[1:]
    late_ms = [(actual - intended) * 1000 for intended, actual in records]
    return {
        "n": n,
        "ran": len(records),
        "p50_ms": percentile(late_ms, 0.5),
        "p99_ms": percentile(late_ms, 0.99),
        "max_ms": max(late_ms),
        "min_ms": min(late_ms),
        "readings": readings,
        "readings_with_unacked": with_unacked,
        "max_unacked": max_unacked,
    }


async def _probe(url: str) -> None:
    app = Hare("bench", broker=url, environ={}, default_queue=QUEUE)
    await app.asend_task("bench.noop", [time.time()])
    await app.aclose()


def hold_round(url: str, hold: int) -> dict[str, Any]:
    queue = QUEUE + ".hold"
    with broker.hare_worker(url, queue) as worker:
        app = Hare("bench", broker=url, environ={}, default_queue=queue)

        async def send(n: int, countdown: float) -> None:
            for start in range(0, n, 500):
                await asyncio.gather(
                    *(
                        app.asend_task("bench.noop", [0.0], countdown=countdown)
                        for _ in range(min(500, n - start))
                    )
                )
            await app.aclose()

        asyncio.run(send(1, 0))
        broker.wait_for_records(worker.record_file, 1, 30)
        rss_idle = worker.rss_mb
        asyncio.run(send(hold, 3600))
        time.sleep(20)
        ready, unacked = broker.queue_counts(queue)
        return {
            "scheduled": hold,
            "rss_idle_mb": rss_idle,
            "rss_after_20s_mb": worker.rss_mb,
            "ready": ready,
            "unacked": unacked,
            "ran": broker.wait_for_records(worker.record_file, 2, 0) - 1,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks delays")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--hold", type=int, default=10_000)
    parser.add_argument(
        "--no-sample",
        action="store_true",
        help="do not read rabbitmqctl during the wait (it costs CPU)",
    )
    args = parser.parse_args(argv)
    with broker.private_vhost() as url:
        rows = []
        for rep in range(args.reps):
            rows.append(lateness_round(url, args.n, seed=rep, sample=not args.no_sample))
            print(
                json.dumps(
                    {k: round(v, 1) if isinstance(v, float) else v for k, v in rows[-1].items()}
                ),
                flush=True,
            )
        held = hold_round(url, args.hold) if args.hold else None
    print(
        f"\nRabbitMQ {broker.rabbitmq_version()}; {args.reps} reps of {args.n} tasks, "
        "delays U(1, 10) s; min / median / max over reps"
    )
    print("| p50 ms | p99 ms | max ms | all ran | readings with unacked |")
    print("|---|---|---|---|---|")

    def spread(key: str) -> str:
        values = [row[key] for row in rows]
        return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"

    print(
        f"| {spread('p50_ms')} | {spread('p99_ms')} | {spread('max_ms')} | "
        f"{all(r['ran'] == r['n'] for r in rows)} | "
        f"{sum(r['readings_with_unacked'] for r in rows)} of "
        f"{sum(r['readings'] for r in rows)} (max {max(r['max_unacked'] for r in rows)}) |"
    )
    if held:
        print(
            f"\nhold: {held['scheduled']} tasks scheduled an hour ahead; after 20 s: "
            f"ready {held['ready']}, unacked {held['unacked']}, ran {held['ran']}; worker RSS "
            f"{held['rss_idle_mb']:.1f} MB idle -> {held['rss_after_20s_mb']:.1f} MB"
        )
