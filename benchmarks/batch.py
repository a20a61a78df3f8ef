"""Batch enqueue: hare's `aenqueue_many` next to raw aiormq publishing hare's exact message.

    python -m benchmarks batch [--n 20000] [--reps 3] [--window 1000] [--url amqp://...]

In each repetition, one after the other on the same broker, quorum queues, in this process:

- **raw, hare's message**: `benchmarks.core.RawLoop(celery=True)`: the Celery protocol v2
  body and header table hare publishes for `noop(i)`, published with confirms in
  `asyncio.gather` windows of 1,000 on one channel;
- **hare batch**: `await app.aenqueue_many([noop.call(i) for i in range(n)], window=...)`
  (building the messages is inside the timing, making the `Call`s is not);
- **hare adelay()**: `await noop.adelay(i)` in the same 1,000-wide windows (`benchmarks core`).

Ratios are taken within each repetition; min / median / max over repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from benchmarks.core import RawLoop, windows
from hare import Hare

QUEUE = "hare-bench.batch"


async def raw_enqueue(url: str, n: int) -> float:
    loop = RawLoop(url, n, celery=True, queue="hare-bench.batch-raw")
    await loop.open()
    seconds = await loop.enqueue()
    await loop.close()
    return n / seconds


async def hare_enqueue(url: str, n: int, window: int, *, batch: bool) -> float:
    app = Hare("bench", broker=url, environ={}, default_queue=QUEUE)

    @app.task(name="bench.noop")
    async def noop(i: int) -> None: ...

    publisher = await app.publisher()
    await publisher.transport.delete_queue(QUEUE)
    publisher.forget_declarations()
    await noop.adelay(-1)  # warm-up: declares the queue
    calls = [noop.call(i) for i in range(n)]
    started = time.perf_counter()
    if batch:
        outcomes = await app.aenqueue_many(calls, window=window)
        failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if failed:
            raise failed[0]
    else:
        await windows(n, noop.adelay)
    seconds = time.perf_counter() - started
    await publisher.transport.delete_queue(QUEUE)
    await publisher.transport.delete_queue(QUEUE + ".dead")
    await app.aclose()
    return n / seconds


def run(url: str, n: int, reps: int, window: int) -> dict[str, tuple[float, float, float]]:
    rows = []
    for rep in range(reps):
        raw = asyncio.run(raw_enqueue(url, n))
        batch = asyncio.run(hare_enqueue(url, n, window, batch=True))
        adelay = asyncio.run(hare_enqueue(url, n, window, batch=False))
        row = {
            "raw": raw,
            "batch": batch,
            "adelay": adelay,
            "batch_ratio": batch / raw,
            "adelay_ratio": adelay / raw,
        }
        rows.append(row)
        print(json.dumps({"rep": rep, **{k: round(v, 3) for k, v in row.items()}}), flush=True)
    return {
        key: (
            min(r[key] for r in rows),
            statistics.median(r[key] for r in rows),
            max(r[key] for r in rows),
        )
        for key in rows[0]
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks batch")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args(argv)
    summary = run(args.url, args.n, args.reps, args.window)

    def spread(key: str, digits: int = 0) -> str:
        low, mid, high = summary[key]
        return f"{low:,.{digits}f} / {mid:,.{digits}f} / {high:,.{digits}f}"

    print(f"\nN = {args.n}, window {args.window}, {args.reps} reps; min / median / max")
    print(
        "| raw, hare's message msg/s | hare batch msg/s | hare adelay() msg/s "
        "| batch / raw | adelay / raw |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {spread('raw')} | {spread('batch')} | {spread('adelay')} "
        f"| {spread('batch_ratio', 2)} | {spread('adelay_ratio', 2)} |"
    )
