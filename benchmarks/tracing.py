"""What tracing costs per task: publish and run N tasks on the memory broker, without and
with `hare.tracing.Tracing` (the OpenTelemetry SDK, a batch processor, an exporter that drops
the spans), and print the time per task of each and the difference.

    python -m benchmarks.tracing [--tasks 5000] [--runs 5]

The memory broker leaves hare's own cost and the middleware's: the difference is what the
two spans a task makes (`apply_async/<task>`, `run/<task>`), their headers and their context
cost, in the producer and the worker together. Over a real broker, the same difference sits
on top of a round trip per publish.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from hare import Hare
from hare.testing import running_worker
from hare.tracing import Tracing


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def _per_task(tasks: int, traced: bool) -> float:
    app = Hare("bench", broker="memory://", environ={}, default_queue="bench")
    provider = TracerProvider()
    if traced:
        provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=1_000_000))
        app.add_middleware(Tracing(tracer_provider=provider))
    done = asyncio.Event()
    ran = 0

    @app.task(name="bench.noop")
    async def noop() -> None:
        nonlocal ran
        ran += 1
        if ran == tasks:
            done.set()

    async with running_worker(app, concurrency=64):
        started = time.perf_counter()
        for _ in range(tasks):
            await noop.adelay()
        await done.wait()
        took = time.perf_counter() - started
    provider.shutdown()
    await app.aclose()
    return took / tasks


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracing")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    off: list[float] = []
    on: list[float] = []
    for _ in range(args.runs):  # interleaved, so a noisy moment hits both
        off.append(asyncio.run(_per_task(args.tasks, traced=False)))
        on.append(asyncio.run(_per_task(args.tasks, traced=True)))
    off_us, on_us = statistics.median(off) * 1e6, statistics.median(on) * 1e6
    print(f"tasks {args.tasks} x {args.runs} runs, median per task (publish + run):")
    print(f"  tracing off: {off_us:7.1f} us")
    print(f"  tracing on:  {on_us:7.1f} us")
    print(f"  cost:        {on_us - off_us:7.1f} us per task ({on_us / off_us - 1:+.0%})")


if __name__ == "__main__":
    main()
