"""The work of the pool benchmark, the same for hare and Celery: a pure-Python loop of a
calibrated length, and a no-op; each run appends one record to `$BENCH_FILE` with
`measure.record`, its start in the place of the intended start: (start, end).

Imported by hare's app (`benchmarks.pool_app`), Celery's (`benchmarks.pool_celery`) and the
orchestrator (`benchmarks.pool`), which calibrates the loop once and passes its length to every
task as an argument.
"""

from __future__ import annotations

import statistics
import time

from benchmarks import measure


def spin(iterations: int) -> int:
    """Pure-Python CPU work that holds the GIL throughout (no I/O, no C call that frees it)."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


def calibrate(seconds: float, tries: int = 7) -> tuple[int, float]:
    """The `spin` length that takes `seconds` in this process, and what that length took:
    scaled from a short probe, refined twice, then timed again. Each timing is the median of
    `tries` runs: this VM's speed drifts (the same loop took 20 ms and 35 ms an hour apart,
    and 12-21 ms within a minute), and a best-of would pick a fast moment."""
    iterations = 100_000
    for _ in range(3):
        iterations = max(1, round(iterations * seconds / timed(iterations, tries)))
    return iterations, timed(iterations, tries)


def timed(iterations: int, tries: int = 7) -> float:
    """Median seconds of `tries` runs of `spin(iterations)`."""
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        spin(iterations)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cpu_task(iterations: int) -> None:
    start = time.time()
    spin(iterations)
    measure.record(start)


def noop_task() -> None:
    measure.record(time.time())
