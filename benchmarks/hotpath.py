"""`python -m benchmarks hotpath [--n 20000] [--reps 5] [--profile]`: hare's own share of a
task's path through a worker, with no broker and no transport.

The deliveries are made once beforehand, as the memory transport hands them out (hare's exact
message, headers decoded), and are fed to the worker's own entry point (`InFlight.handle`,
what the AMQP transport's consumer callback calls) 256 at a time, as a `-c 256` worker holds
them; acks go nowhere. What this measures is everything hare does per delivery between the
transport and the ack: the task per delivery, the duplicate check, decoding the message, the
request, revocation and expiry checks, signals, the call, the result check, the settlement.
What it leaves out is the AMQP client's share (aiormq, pamqp, the socket), which
`python -m benchmarks profile` shows on a real worker.

Prints the CPU time per task (user + system of this process, so the machine's other work
does not count) for each repetition, with min / median / max; with `--profile`, a cProfile
table of one more repetition (cProfile's own overhead inflates small functions: read it for
where, not for how much).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import random
import statistics
import time
from typing import Any, cast

from hare import Hare
from hare.core.envelope import Delivery
from hare.transport.base import Transport
from hare.transport.memory.transport import MemoryTransport
from hare.worker.inflight import InFlight
from hare.worker.parts import Parts
from hare.worker.runner import TaskRunner

QUEUE = "hotpath"
WINDOW = 256


class _NoAcks:
    """A memory transport whose acks go nowhere (the deliveries were leased elsewhere)."""

    def __init__(self) -> None:
        self._transport = MemoryTransport()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    async def ack(self, delivery: Delivery) -> None:
        return None


async def _deliveries(app: Hare, task: Any, n: int) -> list[Delivery]:
    """`n` deliveries of `task(i)`, as the memory transport hands them out."""
    for i in range(n):
        await task.adelay(i)
    transport = app.connections.make_transport()
    await transport.connect()
    out = []
    while (delivery := await transport.get(QUEUE)) is not None:
        out.append(delivery)
    return out


async def one_run(n: int, profiler: cProfile.Profile | None = None) -> float:
    """CPU seconds per task for `n` no-op tasks through one worker's path."""
    app = Hare("bench", broker="memory://", environ={}, default_queue=QUEUE)
    ran = 0

    @app.task(name="bench.noop")
    async def noop(i: int) -> None:
        nonlocal ran
        ran += 1

    deliveries = await _deliveries(app, noop, n)
    transport = cast(Transport, _NoAcks())
    await transport.connect()
    in_flight = InFlight(app, app.clock, [QUEUE], WINDOW)
    parts = Parts.build(
        app,
        transport,
        queues=[QUEUE],
        concurrency=WINDOW,
        nodename="hotpath@bench",
        accept=frozenset({"application/json"}),
        rng=random.Random(0),
        self_counted=set(),
        on_start=in_flight.mark_started,
        schedules=False,
        runner=TaskRunner(4, app.clock),
    )
    gc.collect()
    if profiler is not None:
        profiler.enable()
    started = time.process_time()
    for at in range(0, n, WINDOW):
        for delivery in deliveries[at : at + WINDOW]:
            await in_flight.handle(parts, QUEUE, delivery)
        while len(in_flight):  # noqa: ASYNC110 - polls the worker's own count, one turn each
            await asyncio.sleep(0)
    spent = time.process_time() - started
    if profiler is not None:
        profiler.disable()
    if ran != n:
        raise RuntimeError(f"{ran} of {n} tasks ran")
    parts.runner.shutdown()
    await transport.close()
    await app.aclose()
    return spent / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks hotpath", description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="and a cProfile table")
    args = parser.parse_args(argv)
    rows = [asyncio.run(one_run(args.n)) * 1e6 for _ in range(args.reps)]
    print("hare's own path, µs of CPU per task: " + " ".join(f"{r:.1f}" for r in rows))
    low, mid, high = min(rows), statistics.median(rows), max(rows)
    print(f"min / median / max: {low:.1f} / {mid:.1f} / {high:.1f}")
    if args.profile:
        profiler = cProfile.Profile()
        asyncio.run(one_run(args.n, profiler))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
