"""The measurements, the same for every system: each system only says how to publish and
which worker to start (`System`); these procedures time them and emit one row per figure.

Rows (see `measure.emit`): `measure` is enqueue, drain, retry, e2e, delay or hold; `system`
and `config` name what ran; `value` is the headline figure (msg/s, tasks/s or ms).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.measure import WorkerSpec, emit, pct, read_records, span_rate, wait_count, worker


@dataclass
class Enqueue:
    """One way to publish: `run(n, task)` publishes one warm-up message and then `n` timed ones
    (all left on the queue) and returns the seconds the `n` took."""

    #: Names it in reports (e.g. "pipelined"); `label` describes it.
    key: str
    label: str
    run: Callable[[int, str], float]
    #: One at a time (each waits for its confirm): measured on fewer messages.
    sequential: bool = False


class System:
    """What a driver needs from one system. Subclasses fill in the attributes and methods."""

    name: str
    #: Its queues, purged between measurements (all inside the benchmark's private vhost).
    queues: list[str]
    #: enqueues[0] fills the queue before each drain.
    enqueues: list[Enqueue]
    #: drains[0] is the one-process configuration, also used for latency and retries.
    drains: list[WorkerSpec]
    delay_worker: WorkerSpec | None = None
    hold_worker: WorkerSpec | None = None
    #: The worker whose RSS is read idle and after `soak_n` tasks (hare's only).
    soak_worker: WorkerSpec | None = None
    #: Where tasks scheduled an hour ahead may sit (ready or unacked).
    hold_queues: list[str] = []
    #: Whether it has a task that fails once and is retried (`flaky`).
    retries: bool = True

    def purge(self) -> None:
        raise NotImplementedError

    def send_now(self, intended: float) -> None:
        """Publish one `noop(intended)` (warm-up)."""
        raise NotImplementedError

    def send_paced(self, rate: float, total: int) -> None:
        """Publish `total` `noop(now)` at `rate` per second."""
        raise NotImplementedError

    def schedule(self, delays: list[float]) -> None:
        """Publish one `noop(now + d)` with a delay of `d` seconds for each `d`."""
        raise NotImplementedError


@dataclass
class Options:
    n: int
    n_seq: int
    n_retry: int
    rate: float
    seconds: float
    delay_n: int
    hold_n: int
    hold_wait: float
    soak_n: int
    seed: int
    vhost: str
    log: str


def throughput(system: System, options: Options) -> None:
    """Enqueue (each way) and drain (each worker configuration); then a drain of `n_retry`
    tasks that fail once and are retried, with the first configuration."""
    first = system.enqueues[0]
    for spec in system.drains:
        system.purge()
        _enqueue_row(system, first, options.n, spec.task)
        _drain(system, spec, options, "drain", options.n)
    for how in system.enqueues[1:]:
        system.purge()
        _enqueue_row(system, how, options.n_seq if how.sequential else options.n, "noop")
    if system.retries:
        system.purge()
        first.run(options.n_retry, "flaky")
        _drain(system, system.drains[0], options, "retry", options.n_retry)
    system.purge()


#: Tasks whose publishing counts as the plain no-op's; any other fill is reported apart.
NOOPS = ("noop", "noop_sync")


def _enqueue_row(system: System, how: Enqueue, n: int, task: str) -> None:
    seconds = how.run(n, task)
    plain = task in NOOPS
    emit(
        {
            "measure": "enqueue",
            "system": system.name,
            "config": how.label if plain else f"{how.label}, {task}",
            "key": how.key if plain else f"{how.key}+{task}",
            "value": n / seconds,
            "n": n,
        }
    )


def _drain(system: System, spec: WorkerSpec, options: Options, measure: str, n: int) -> None:
    """Start the worker on a queue holding `n` + 1 tasks; time the first start to the last.
    A `retry` drain holds tasks that each run twice."""
    expect = (n + 1) * (2 if measure == "retry" else 1)
    with worker(spec, options.log) as running:
        complete = wait_count(running.record_file, expect, timeout=300)
        records = read_records(running.record_file)
        peak = running.peak_rss_mb
        cpu = running.monitor.cpu_per_task([actual for _, actual in records])
    row = {
        "measure": measure,
        "system": system.name,
        "config": spec.label,
        "key": spec.key,
        "n": n,
        "executions": len(records),
        "complete": complete,
        "rss_peak_mb": peak,
    }
    if cpu is not None:
        row.update(cpu_us=cpu[0], broker_cpu_us=cpu[1])
    if len(records) > 1:
        first = min(actual for _, actual in records)
        # A retried task counts once: the rate is of tasks finished, not of attempts.
        rate = span_rate(records) * (0.5 if measure == "retry" else 1.0)
        row.update(value=rate, boot_s=first - running.started)
    emit(row)


def _wait_started(system: System, record_file: str) -> None:
    """Send one task and return once the worker (recording to `record_file`) ran it."""
    system.send_now(0.0)
    if not wait_count(record_file, 1, timeout=60):
        raise RuntimeError(f"{system.name}: the worker did not start")


def latency(system: System, options: Options) -> None:
    """Publish -> task start at a fixed rate, the worker (drains[0]) already running."""
    spec = system.drains[0]
    system.purge()
    total = round(options.rate * options.seconds)
    with worker(spec, options.log) as running:
        _wait_started(system, running.record_file)
        time.sleep(0.5)
        system.send_paced(options.rate, total)
        complete = wait_count(running.record_file, total + 1, timeout=60)
        late = [(a - i) * 1000 for i, a in read_records(running.record_file) if i > 0]
    emit(
        {
            "measure": "e2e",
            "system": system.name,
            "config": f"{spec.label}, {options.rate:g}/s",
            "key": spec.key,
            "value": pct(late, 0.5),
            "p99_ms": pct(late, 0.99),
            "max_ms": max(late, default=float("nan")),
            "n": total,
            "executions": len(late),
            "complete": complete,
        }
    )
    system.purge()


def delays(system: System, options: Options) -> None:
    """Lateness of `delay_n` tasks delayed uniformly over 1-10 s (seeded, random order)."""
    spec = system.delay_worker
    if spec is None:
        return
    rng = random.Random(options.seed)
    chosen = [rng.uniform(1.0, 10.0) for _ in range(options.delay_n)]
    system.purge()
    with worker(spec, options.log) as running:
        _wait_started(system, running.record_file)
        floor = _TimerFloor(time.time(), chosen)
        system.schedule(chosen)
        complete = wait_count(running.record_file, len(chosen) + 1, timeout=10 + 60)
        late = [(a - i) * 1000 for i, a in read_records(running.record_file) if i > 0]
        floor.join()
    emit(
        {
            "measure": "delay",
            "system": system.name,
            "config": spec.label,
            "key": spec.key,
            "value": pct(late, 0.99),
            "p50_ms": pct(late, 0.5),
            "max_ms": max(late, default=float("nan")),
            "n": len(chosen),
            "executions": len(late),
            "complete": complete,
            "floor_p99_ms": pct(floor.late_ms, 0.99),
            "floor_max_ms": max(floor.late_ms, default=float("nan")),
        }
    )


class _TimerFloor(threading.Thread):
    """The machine's own lateness at the same moments: a thread of the driver that sleeps until
    each due time (`start + d`) and records how late it woke. No broker, no worker: what a
    stall of the machine (CPU contention, the hypervisor) costs any timer."""

    def __init__(self, start: float, delays: list[float]) -> None:
        super().__init__(daemon=True)
        self.due = sorted(start + d for d in delays)
        self.late_ms: list[float] = []
        self.start()

    def run(self) -> None:
        for due in self.due:
            while (left := due - time.time()) > 0:
                time.sleep(left)
            self.late_ms.append((time.time() - due) * 1000)


def hold(system: System, options: Options) -> None:
    """Worker RSS and what it holds while `hold_n` tasks wait an hour ahead."""
    from benchmarks.measure import queue_counts

    spec = system.hold_worker
    if spec is None:
        return
    system.purge()
    with worker(spec, options.log) as running:
        _wait_started(system, running.record_file)
        time.sleep(1.0)
        idle = running.rss_mb
        system.schedule([3600.0] * options.hold_n)
        time.sleep(options.hold_wait)
        ready, unacked = queue_counts(options.vhost, system.hold_queues)
        now = running.rss_mb
        ran = len(read_records(running.record_file)) - 1
    emit(
        {
            "measure": "hold",
            "system": system.name,
            "config": spec.label,
            "key": spec.key,
            "value": now,
            "rss_idle_mb": idle,
            "ready": ready,
            "unacked": unacked,
            "ran": ran,
            "n": options.hold_n,
            "after_s": options.hold_wait,
        }
    )


def soak(system: System, options: Options) -> None:
    """Worker RSS idle, and after `soak_n` no-op tasks went through it (published while it
    runs, 1000 in flight), a few seconds after the last one: whether a worker's memory stays
    flat under use (what it remembers is bounded: recent runs, revocations)."""
    spec = system.soak_worker
    if spec is None:
        return
    system.purge()
    with worker(spec, options.log) as running:
        _wait_started(system, running.record_file)
        time.sleep(2.0)
        idle = running.rss_mb
        system.enqueues[0].run(options.soak_n, spec.task)
        complete = wait_count(running.record_file, options.soak_n + 2, timeout=600)
        time.sleep(3.0)
        after = running.rss_mb
    emit(
        {
            "measure": "soak",
            "system": system.name,
            "config": spec.label,
            "key": spec.key,
            "value": after - idle,
            "rss_idle_mb": idle,
            "rss_after_mb": after,
            "n": options.soak_n,
            "complete": complete,
        }
    )
