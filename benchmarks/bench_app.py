"""The app the benchmarks run under `hare worker`: each run appends a fixed-size record.

`flaky` fails its first attempt with a retry (for the cost of a retry).

Record: 16 bytes, two little-endian doubles (intended start, actual start), written with one
`os.write` to an O_APPEND file, so counting and lateness are exact across threads and
processes and cost about 2 µs per task. Configured by BENCH_FILE and BENCH_QUEUE.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time

from hare import Hare, Retry
from hare.context import current

QUEUE = os.environ.get("BENCH_QUEUE", "hare-bench")
app = Hare("bench", default_queue=QUEUE, queue_type=os.environ.get("BENCH_QUEUE_TYPE", "quorum"))
_out = os.open(os.environ.get("BENCH_FILE", os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
_pack = struct.Struct("<dd").pack


@app.task(name="bench.noop")
async def noop(intended: float) -> None:
    os.write(_out, _pack(intended, time.time()))


@app.task(name="bench.busy")
async def busy(intended: float, millis: float) -> None:
    """Records its start, then takes `millis` ms (asleep): a backlog that lasts (priorities)."""
    os.write(_out, _pack(intended, time.time()))
    await asyncio.sleep(millis / 1000)


@app.task(name="bench.noop_sync")
def noop_sync(intended: float) -> None:
    os.write(_out, _pack(intended, time.time()))


@app.task(name="bench.flaky")
async def flaky(intended: float) -> None:
    """Records each attempt; the first one asks for a retry at once (countdown=0)."""
    os.write(_out, _pack(intended, time.time()))
    context = current()
    if context is not None and context.retries == 0:
        raise Retry(countdown=0)


def read_records(path: str) -> list[tuple[float, float]]:
    """The (intended, actual) pairs written so far."""
    with open(path, "rb") as file:
        data = file.read()
    return [struct.unpack_from("<dd", data, i) for i in range(0, len(data) - len(data) % 16, 16)]
