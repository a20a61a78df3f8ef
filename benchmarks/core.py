"""Enqueue and drain rate of a no-op task: hare next to a raw aiormq loop, same broker, same run.

    python -m benchmarks core [--n 20000] [--reps 3] [--url amqp://...]

Raw loop (the ceiling, as in shared/peers-bench/raw_aiormq.py): persistent ~100-byte JSON
bodies published with confirms, 1000 outstanding at a time (`asyncio.gather`); then
`basic.consume` with prefetch, `json.loads` of each body and one `basic.ack` per message.

hare: `await task.adelay(i)` with the same 1000-wide windows (each call waits for its own
confirm), then an in-process `Worker` (concurrency = prefetch) running an async no-op task.
Both use quorum queues. Figures are medians over reps; the ratio is computed pair by pair
within each rep, so drift of the shared machine cancels out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq

from hare import Hare, Worker

WINDOW = 1000
PREFETCH = 256


def raw_body(i: int) -> bytes:
    return json.dumps(
        {
            "task": "bench.noop",
            "id": f"{i:08d}",
            "args": [i],
            "kwargs": {},
            "eta": None,
            "retries": 0,
        }
    ).encode()


async def windows(n: int, send: Callable[[int], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    for start in range(0, n, WINDOW):
        await asyncio.gather(*(send(i) for i in range(start, min(start + WINDOW, n))))
    return time.perf_counter() - started


def celery_message(i: int) -> tuple[bytes, dict[str, Any]]:
    """The body and headers hare publishes for `noop(i)` (Celery protocol v2)."""
    from hare.core import protocol
    from hare.core.message import Message

    message = Message(
        id=f"{i:08d}-0000-4000-8000-000000000000",
        task="bench.noop",
        args=(i,),
        origin="gen1@bench",
    )
    body, properties = protocol.encode(message, now=0.0)
    return body, dict(properties.headers)


def celery_properties(headers: dict[str, Any]) -> aiormq.spec.Basic.Properties:
    """The properties a raw aiormq publisher sends with hare's message (`celery_message`)."""
    return aiormq.spec.Basic.Properties(
        delivery_mode=2,
        content_type="application/json",
        content_encoding="utf-8",
        correlation_id=str(headers["id"]),
        headers=headers,
    )


async def declare_quorum(url: str, queue: str) -> None:
    """Delete `queue` and declare it again, as a quorum queue, through `url` (on a cluster
    the node the declaration goes through leads the queue)."""
    connection = await aiormq.connect(url)
    channel = await connection.channel()
    await channel.queue_delete(queue)
    await channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    await connection.close()


class RawLoop:
    """The raw loop on one queue, in steps: `open`, `enqueue`, `drain` (each returns the
    seconds it took), `close`; several can run side by side (one queue each)."""

    def __init__(self, url: str, n: int, *, celery: bool, queue: str = "hare-bench.raw") -> None:
        self.url, self.n, self.queue = url, n, queue
        self.messages = [celery_message(i) if celery else (raw_body(i), None) for i in range(n)]
        self.plain = aiormq.spec.Basic.Properties(delivery_mode=2, content_type="application/json")

    async def open(self, declare_url: str | None = None) -> None:
        """(Re)declare the queue through `declare_url` (default: the loop's URL); connect."""
        await declare_quorum(declare_url or self.url, self.queue)
        self.connection = await aiormq.connect(self.url)
        self.channel = await self.connection.channel(publisher_confirms=True)

    async def enqueue(self) -> float:
        async def publish(i: int) -> None:
            body, headers = self.messages[i]
            properties = self.plain if headers is None else celery_properties(headers)
            confirm = await self.channel.basic_publish(
                body, routing_key=self.queue, properties=properties
            )
            if not isinstance(confirm, aiormq.spec.Basic.Ack):
                raise RuntimeError(f"not confirmed: {confirm!r}")

        return await windows(self.n, publish)

    async def drain(self) -> float:
        consumer = await self.connection.channel()
        await consumer.basic_qos(prefetch_count=PREFETCH)
        done = asyncio.Event()
        got = 0

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal got
            json.loads(message.body)
            await message.channel.basic_ack(message.delivery_tag or 0)
            got += 1
            if got >= self.n:
                done.set()

        started = time.perf_counter()
        ok = await consumer.basic_consume(self.queue, on_message)
        await asyncio.wait_for(done.wait(), 300)
        seconds = time.perf_counter() - started
        await consumer.basic_cancel(ok.consumer_tag or "")
        return seconds

    async def close(self) -> None:
        await asyncio.sleep(0.2)
        await self.channel.queue_delete(self.queue)
        await self.connection.close()


async def raw_round(
    url: str, n: int, *, celery: bool = False, declare_url: str | None = None
) -> tuple[float, float]:
    """The raw loop; with `celery`, publishing hare's exact message (headers and all), its
    header table encoded by pamqp per publish as any aiormq user's would be. The queue is
    declared through `declare_url` (default: `url`)."""
    loop = RawLoop(url, n, celery=celery)
    await loop.open(declare_url)
    enqueue = await loop.enqueue()
    drain = await loop.drain()
    await loop.close()
    return n / enqueue, n / drain


async def hare_round(url: str, n: int, *, declare_url: str | None = None) -> tuple[float, float]:
    """hare's loop; with `declare_url`, the queue is declared through it first (as a quorum
    queue with hare's arguments) and hare uses it as it is."""
    queue = "hare-bench.core"
    app = Hare("bench", broker=url, environ={}, default_queue=queue)
    done = asyncio.Event()
    got = 0

    @app.task(name="bench.noop")
    async def noop(i: int) -> None:
        nonlocal got
        got += 1
        if got >= n:
            done.set()

    publisher = await app.publisher()
    await publisher.transport.delete_queue(queue)
    publisher.forget_declarations()
    if declare_url is not None:
        elsewhere = Hare("bench", broker=declare_url, environ={}, default_queue=queue)
        await (await elsewhere.publisher()).ensure_queue(queue)
        await elsewhere.aclose()
    await noop.adelay(-1)  # warm-up: declares the queue
    got = -1
    enqueue = await windows(n, noop.adelay)
    await app.aclose()

    worker = Worker(app, queues=[queue], concurrency=PREFETCH)
    started = time.perf_counter()
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(done.wait(), 300)
    drain = time.perf_counter() - started
    worker.stop()
    await running
    cleanup = await app.publisher()
    await cleanup.transport.delete_queue(queue)
    await cleanup.transport.delete_queue(queue + ".dead")
    await app.aclose()
    return n / enqueue, n / drain


def run(url: str, n: int, reps: int) -> dict[str, Any]:
    rows = []
    for rep in range(reps):
        raw = asyncio.run(raw_round(url, n))
        same = asyncio.run(raw_round(url, n, celery=True))
        hare = asyncio.run(hare_round(url, n))
        rows.append(
            {
                "rep": rep,
                "raw_enqueue": raw[0],
                "raw_drain": raw[1],
                "same_enqueue": same[0],
                "same_drain": same[1],
                "hare_enqueue": hare[0],
                "hare_drain": hare[1],
                "enqueue_ratio": hare[0] / raw[0],
                "drain_ratio": hare[1] / raw[1],
                "enqueue_ratio_same": hare[0] / same[0],
                "drain_ratio_same": hare[1] / same[1],
            }
        )
        print(json.dumps({k: round(v, 3) for k, v in rows[-1].items()}), flush=True)
    keys = [k for k in rows[0] if k != "rep"]
    return {
        k: (min(r[k] for r in rows), statistics.median(r[k] for r in rows), max(r[k] for r in rows))
        for k in keys
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks core")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args(argv)
    summary = run(args.url, args.n, args.reps)

    def spread(key: str, digits: int = 0) -> str:
        low, mid, high = summary[key]
        return f"{low:.{digits}f} / {mid:.{digits}f} / {high:.{digits}f}"

    print(f"\nN = {args.n}, {args.reps} reps; min / median / max")
    print(
        "| measure | raw aiormq, plain body | raw aiormq, hare's message | hare "
        "| hare / raw plain | hare / raw same message |"
    )
    print("|---|---|---|---|---|---|")
    for what in ("enqueue", "drain"):
        print(
            f"| {what} msg/s | {spread('raw_' + what)} | {spread('same_' + what)} | "
            f"{spread('hare_' + what)} | {spread(what + '_ratio', 2)} | "
            f"{spread(what + '_ratio_same', 2)} |"
        )
