"""The ceiling: a raw aiormq loop, no task framework.

Publish: a ~100-byte JSON body, persistent, with publisher confirms, either 1,000 outstanding
at a time (`asyncio.gather` windows) or one at a time; or, as a second variant, exactly the
message hare publishes for `noop(i)` (Celery protocol v2 body and its header table, encoded by
pamqp per publish as any aiormq user's would be). Consume (`python -m benchmarks.systems.raw`,
the worker): `basic.qos(prefetch)`, `json.loads` of each body, the same 16-byte record a
benchmark task writes, and one awaited `basic.ack` per message. Quorum queue, as hare's. Runs
in hare's environment, on the same aiormq and event loop as hare.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import aiormq

from benchmarks import measure
from benchmarks.core import celery_message, celery_properties
from benchmarks.measure import WorkerSpec
from benchmarks.procedures import Enqueue, System

#: `BENCH_CLASSIC=1` (the `raw-classic` variant): a classic queue instead of a quorum one.
CLASSIC = os.environ.get("BENCH_CLASSIC") == "1"
QUEUE = "raw.classic.q" if CLASSIC else "raw.q"
ARGUMENTS: dict[str, Any] = {"x-queue-type": "classic" if CLASSIC else "quorum"}
PREFETCH = 256
#: The `task` that stands for hare's exact message (see `benchmarks.core.celery_message`).
HARE_MESSAGE = "hare's message"
#: A body and its headers (`None`: the plain body's properties).
Message = tuple[bytes, dict[str, Any] | None]


def body(intended: float, i: int = 0) -> bytes:
    return json.dumps(
        {
            "task": "bench.noop",
            "id": f"{i:08d}",
            "args": [intended],
            "kwargs": {},
            "eta": None,
            "retries": 0,
        }
    ).encode()


class Publisher:
    def __init__(self, url: str) -> None:
        self.url = url
        self.properties = aiormq.spec.Basic.Properties(
            delivery_mode=2, content_type="application/json"
        )

    async def __aenter__(self) -> Publisher:
        self.connection = await aiormq.connect(self.url)
        self.channel = await self.connection.channel(publisher_confirms=True)
        await self.channel.queue_declare(QUEUE, durable=True, arguments=ARGUMENTS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    async def publish(self, payload: bytes, headers: dict[str, Any] | None = None) -> None:
        properties = self.properties if headers is None else celery_properties(headers)
        confirm = await self.channel.basic_publish(
            payload, routing_key=QUEUE, properties=properties
        )
        if not isinstance(confirm, aiormq.spec.Basic.Ack):
            raise RuntimeError(f"not confirmed: {confirm!r}")


class Raw(System):
    name = "raw-classic" if CLASSIC else "raw"
    queues = [QUEUE]
    retries = False

    def __init__(self, url: str, quick: bool) -> None:
        self.url = url
        self.enqueues = [
            Enqueue("pipelined", "confirms, 1000 in flight", self._windowed),
            Enqueue("sequential", "confirms, one at a time", self._sequential, sequential=True),
        ]
        command = [sys.executable, "-m", "benchmarks.systems.raw"]
        self.drains = [
            WorkerSpec("1p", f"consume, prefetch {PREFETCH}, ack each", command),
            WorkerSpec(
                "1p-hare-message",
                f"consume hare's message, prefetch {PREFETCH}, ack each",
                command,
                task=HARE_MESSAGE,
            ),
            WorkerSpec(
                "2p-hare-message",
                f"2 processes, consume hare's message, prefetch {PREFETCH}, ack each",
                command,
                env={"BENCH_PROCESSES": "2"},
                task=HARE_MESSAGE,
            ),
        ]

    def _run(self, n: int, task: str, send: Callable[[Publisher, list[Message]], Any]) -> float:
        if task == HARE_MESSAGE:
            bodies: list[Message] = [celery_message(i) for i in range(n)]
        else:
            bodies = [(body(0.0, i), None) for i in range(n)]

        async def go() -> float:
            async with Publisher(self.url) as publisher:
                await publisher.publish(body(0.0))
                started = time.perf_counter()
                await send(publisher, bodies)
                return time.perf_counter() - started

        return asyncio.run(go())

    def _windowed(self, n: int, task: str) -> float:
        async def send(publisher: Publisher, bodies: list[Message]) -> None:
            await measure.windows(len(bodies), lambda i: publisher.publish(*bodies[i]))

        return self._run(n, task, send)

    def _sequential(self, n: int, task: str) -> float:
        async def send(publisher: Publisher, bodies: list[Message]) -> None:
            for one in bodies:
                await publisher.publish(*one)

        return self._run(n, task, send)

    def purge(self) -> None:
        asyncio.run(measure.purge(self.url, self.queues))

    def send_now(self, intended: float) -> None:
        async def go() -> None:
            async with Publisher(self.url) as publisher:
                await publisher.publish(body(intended))

        asyncio.run(go())

    def send_paced(self, rate: float, total: int) -> None:
        async def go() -> None:
            async with Publisher(self.url) as publisher:
                await measure.apace(rate, total, lambda t: publisher.publish(body(t)))

        asyncio.run(go())


def make(url: str, quick: bool) -> System:
    return Raw(url, quick)


async def consume(url: str) -> None:
    """The raw worker: consume, decode, record, ack; until terminated."""
    connection = await aiormq.connect(url)
    channel = await connection.channel()
    await channel.basic_qos(prefetch_count=PREFETCH)
    await channel.queue_declare(QUEUE, durable=True, arguments=ARGUMENTS)

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        data = json.loads(message.body)
        # A plain body is {"args": [intended], ...}; hare's is [[intended], {}, {...}].
        measure.record(data["args"][0] if isinstance(data, dict) else data[0][0])
        await message.channel.basic_ack(message.delivery_tag or 0)

    await channel.basic_consume(QUEUE, on_message)
    await asyncio.Future()


def _consume_here() -> None:
    from hare.worker.loops import loop_factory, run

    run(consume(os.environ["BENCH_URL"]), loop_factory("auto")[1])


if __name__ == "__main__":
    # BENCH_PROCESSES=N: N consumer processes (the scaling reference for `--processes N`);
    # they share this one's process group, which the harness stops as a whole.
    processes = int(os.environ.pop("BENCH_PROCESSES", "1"))
    if processes > 1:
        import subprocess

        children = [
            subprocess.Popen([sys.executable, "-m", "benchmarks.systems.raw"])
            for _ in range(processes)
        ]
        for child in children:
            child.wait()
    else:
        _consume_here()
