"""The app of the periodic fleet benchmark: a 1 s schedule whose runs append their start time.

BENCH_FILE: where runs are recorded (one os.write each of three doubles: the real time it
started, the occurrence it runs for in epoch seconds, and this pod's generation); BENCH_CLOCK_SKEW:
seconds this pod's wall clock is off (e.g. 0.3), to model pods whose clocks disagree;
BENCH_APP: the app's name (so runs never share ticks with another run's); BENCH_INTERVAL: the
schedule's period in seconds (default 1); HARE_GENERATION: the deploy's generation.
"""

from __future__ import annotations

import asyncio
import os
import time

from benchmarks.periodic import RECORD
from hare import Hare
from hare.context import current
from hare.core.headers import PERIODIC_HEADER
from hare.periodic.schedules import every


class SkewedClock:
    """The system clock, with the wall clock moved by a fixed offset."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def time(self) -> float:
        return time.time() + self.skew

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


app = Hare(
    os.environ.get("BENCH_APP", "bench-periodic"),
    clock=SkewedClock(float(os.environ.get("BENCH_CLOCK_SKEW", "0"))),
    default_queue=os.environ.get("BENCH_APP", "bench-periodic") + ".work",
    watchdog_interval=float(os.environ.get("BENCH_WATCHDOG", "5")),
)
_out = os.open(os.environ.get("BENCH_FILE", os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT)


_generation = float(os.environ.get("HARE_GENERATION", "0"))


@app.periodic(every(seconds=float(os.environ.get("BENCH_INTERVAL", "1"))), name="bench.second")
async def second() -> None:
    started = time.time()  # the real time, whatever this pod believes
    running = current()
    periodic = running.message.headers.get(PERIODIC_HEADER) if running is not None else None
    occurrence = periodic[1] / 1000 if isinstance(periodic, list) else float("nan")
    os.write(_out, RECORD.pack(started, occurrence, _generation))
