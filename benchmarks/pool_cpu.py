"""CPU readings for the pool benchmark on a shared machine: what the worker's own process used
per task, how much of the machine other processes took meanwhile, and waiting for a quiet
moment before a drain.

The machine has 2 cores and other people's tests run on it: a drain that shared the cores
with them measures them too. `wait_quiet` holds a drain back until the others are nearly idle
(for at most a minute and a half), and each row says how many cores the others used during
it (`others_cores`), so a figure taken under load can be told apart.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

from benchmarks import measure


@dataclass(frozen=True)
class Reading:
    """CPU seconds used so far, read together, and the tasks run so far."""

    at: float
    tasks: int
    #: The worker's own process (for hare: the one with the connection; for Celery: its
    #: MainProcess), and its whole tree (with the pool's children).
    parent: float
    tree: float
    broker: float
    #: This process (the orchestrator, with its sampling thread).
    own: float
    #: Every process of the machine, and what the hypervisor took (steal).
    machine: float


def _seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _machine() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq + times.steal)


def read(pid: int, record_file: str, broker: psutil.Process | None) -> Reading:
    root = psutil.Process(pid)
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        tree = [root]
    return Reading(
        at=time.monotonic(),
        tasks=measure.count(record_file),
        parent=_seconds(root),
        tree=sum(_seconds(process) for process in tree),
        broker=_seconds(broker) if broker is not None else 0.0,
        own=_seconds(psutil.Process(os.getpid())),
        machine=_machine(),
    )


def between(before: Reading, after: Reading) -> dict[str, float]:
    """The parent's CPU µs per task, and the cores the machine's other processes used."""
    out: dict[str, float] = {}
    if after.tasks > before.tasks:
        out["parent_cpu_us"] = (after.parent - before.parent) / (after.tasks - before.tasks) * 1e6
    span = after.at - before.at
    if span > 0:
        ours = (
            (after.tree - before.tree) + (after.broker - before.broker) + (after.own - before.own)
        )
        out["others_cores"] = max(0.0, (after.machine - before.machine - ours) / span)
    return out


def wait_quiet(
    broker: psutil.Process | None, limit: float = 0.25, window: float = 2.0, most: float = 90.0
) -> float:
    """Wait until the processes of the machine other than the broker and this one use under
    `limit` cores over `window` seconds, for at most `most` seconds; the seconds waited."""
    started = time.monotonic()
    me = psutil.Process(os.getpid())
    while True:
        machine, rabbit, own = _machine(), _broker_seconds(broker), _seconds(me)
        time.sleep(window)
        used = (_machine() - machine) - (_broker_seconds(broker) - rabbit) - (_seconds(me) - own)
        waited = time.monotonic() - started
        if used / window < limit or waited >= most:
            return waited - window


def _broker_seconds(broker: psutil.Process | None) -> float:
    return _seconds(broker) if broker is not None else 0.0
