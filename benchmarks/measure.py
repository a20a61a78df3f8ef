"""Measuring, shared by every system's driver: records, workers, RSS, pacing, percentiles.

Stdlib and psutil only, so the same code runs in hare's environment and in the peers' one
(`benchmarks/.peers-venv`). Adapted from the peers' baseline harness (shared/peers-bench).

Completion is counted through a record file: every benchmark task appends one 16-byte record
(intended start, actual start; two little-endian doubles) with a single `os.write` to a file
opened with O_APPEND, so counting is exact across processes and threads and costs ~2 µs per
task. The file is named by `$BENCH_FILE` in the worker's environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RECORD = struct.Struct("<dd")
#: Prefix of the lines a driver prints for the orchestrator to collect.
ROW_PREFIX = "BENCH-ROW "

_fd: int | None = None
_fd_pid: int | None = None


def record(intended: float = 0.0) -> None:
    """Called inside every benchmark task: append (intended, now) to `$BENCH_FILE`."""
    global _fd, _fd_pid
    if _fd is None or _fd_pid != os.getpid():
        _fd = os.open(os.environ["BENCH_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fd_pid = os.getpid()
    os.write(_fd, RECORD.pack(intended, time.time()))


def new_record_file(tag: str) -> str:
    handle, path = tempfile.mkstemp(prefix=f"bench-{tag}-", suffix=".bin")
    os.close(handle)
    return path


def count(path: str) -> int:
    return os.path.getsize(path) // RECORD.size


def read_records(path: str) -> list[tuple[float, float]]:
    data = Path(path).read_bytes()
    end = len(data) - len(data) % RECORD.size
    return [RECORD.unpack_from(data, offset) for offset in range(0, end, RECORD.size)]


def wait_count(path: str, n: int, timeout: float, poll: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while count(path) < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def pct(values: Sequence[float], p: float) -> float:
    """The `p` quantile (0..1), linear between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def emit(row: dict[str, Any]) -> None:
    """Hand one result row to the orchestrator (a tagged JSON line on stdout)."""
    row = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
    row["loadavg1"] = round(os.getloadavg()[0], 2)
    print(ROW_PREFIX + json.dumps(row), flush=True)


# -- worker processes -------------------------------------------------------------------------


class RssMonitor(threading.Thread):
    """Samples a process tree every `interval` s: its summed RSS (keeping the peak), and the CPU
    seconds it and the broker (RabbitMQ's `beam.smp`) have used, as `(time, tree, broker)`."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.last = 0
        self.cpu: list[tuple[float, float, float]] = []
        self._broker = broker_process()
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._halt.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            total, cpu = 0, 0.0
            for process in processes:
                try:
                    total += process.memory_info().rss
                    times = process.cpu_times()
                    cpu += times.user + times.system
                except psutil.Error:
                    continue
            self.cpu.append((time.time(), cpu, _cpu_seconds(self._broker)))
            self.last = total
            self.peak = max(self.peak, total)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)

    def cpu_per_task(self, starts: list[float]) -> tuple[float, float] | None:
        """CPU µs per task of the tree and of the broker, between the first and the last
        sample inside the span of task `starts` (epoch seconds); `None` if under 0.3 s."""
        if not starts:
            return None
        first, last = min(starts), max(starts)
        inside = [sample for sample in self.cpu if first <= sample[0] <= last]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.3:
            return None
        (t0, tree0, broker0), (t1, tree1, broker1) = inside[0], inside[-1]
        tasks = sum(1 for start in starts if t0 <= start < t1)
        if not tasks:
            return None
        return (tree1 - tree0) / tasks * 1e6, (broker1 - broker0) / tasks * 1e6


def broker_process() -> psutil.Process | None:
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "").startswith("beam"):
            return process
    return None


def _cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return float("nan")
    try:
        times = process.cpu_times()
    except psutil.Error:
        return float("nan")
    return float(times.user + times.system)


@dataclass
class WorkerSpec:
    """How to start one system's worker: label, command line and extra environment."""

    #: Names it in reports (e.g. "async-1p"); `label` describes it.
    key: str
    label: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    #: The task the worker's queue is filled with (a name the system's driver understands).
    task: str = "noop"
    #: Seconds it gets to stop on SIGTERM before SIGKILL (Celery's solo pool takes ~6 s to
    #: notice any signal).
    grace: float = 20.0


@dataclass
class RunningWorker:
    process: subprocess.Popen[bytes]
    record_file: str
    monitor: RssMonitor
    started: float

    @property
    def rss_mb(self) -> float:
        return self.monitor.last / 2**20

    @property
    def peak_rss_mb(self) -> float:
        return self.monitor.peak / 2**20


@contextmanager
def worker(spec: WorkerSpec, log: str) -> Iterator[RunningWorker]:
    """Start `spec` in a session of its own (so the whole tree can be stopped), recording to a
    fresh file; stop it (SIGTERM, then SIGKILL) and remove the file afterwards."""
    record_file = new_record_file("records")
    env = {**os.environ, **spec.env, "BENCH_FILE": record_file, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(spec.command)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            spec.command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    monitor = RssMonitor(process.pid)
    monitor.start()
    try:
        yield RunningWorker(process, record_file, monitor, time.time())
    finally:
        monitor.stop()
        stop(process, spec.grace)
        os.unlink(record_file)


def stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM the process group of a worker this harness started; SIGKILL what outlives it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(10)


def span_rate(records: list[tuple[float, float]]) -> float:
    """Tasks per second from the first task's start to the last one's."""
    starts = sorted(actual for _, actual in records)
    span = starts[-1] - starts[0]
    return (len(starts) - 1) / span if span > 0 else float("nan")


def celery_worker_command(app: str, queue: str, node: str, *options: str) -> list[str]:
    """`celery -A app worker *options` on `queue`, named `node`, as every benchmark runs it:
    warnings only, and without gossip, mingle and heartbeat (events between Celery workers
    that hare's worker has no counterpart of)."""
    command = [bin_path("celery"), "-A", app, "worker", *options, "--loglevel", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return [*command, "-Q", queue, "-n", node]


def bin_path(name: str) -> str:
    """A console script of the running interpreter's environment."""
    return str(Path(sys.executable).parent / name)


# -- pacing -----------------------------------------------------------------------------------


def pace(rate: float, total: int, send: Callable[[float], object]) -> None:
    """Call `send(intended)` `total` times at `rate` per second (catching up when behind);
    `intended` is the wall time just before the call."""
    started = time.monotonic()
    for k in range(total):
        delay = started + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(time.time())


async def apace(rate: float, total: int, send: Callable[[float], Awaitable[object]]) -> None:
    """`pace` for coroutines: each send runs as its own task, so waiting for one publish's
    confirm does not hold back the next; all are awaited at the end."""
    started = time.monotonic()
    pending = []
    for k in range(total):
        delay = started + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.ensure_future(send(time.time())))
    await asyncio.gather(*pending)


async def windows(n: int, send: Callable[[int], Awaitable[object]], width: int = 1000) -> None:
    """`n` sends, `width` outstanding at a time (`asyncio.gather` per window)."""
    for start in range(0, n, width):
        await asyncio.gather(*(send(i) for i in range(start, min(start + width, n))))


# -- the broker ------------------------------------------------------------------------------


def queue_counts(vhost: str, names: Sequence[str]) -> tuple[int, int]:
    """(ready, unacknowledged) summed over `names` in `vhost`, from `rabbitmqctl`."""
    out = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--no-table-headers",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    ready = unacked = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in names:
            ready += int(parts[1])
            unacked += int(parts[2])
    return ready, unacked


async def purge(url: str, queues: Sequence[str]) -> None:
    """Purge `queues` (those that exist) with a plain aiormq connection."""
    import aiormq

    connection = await aiormq.connect(url)
    try:
        for name in queues:
            channel = await connection.channel()
            try:
                await channel.queue_purge(name)
            except aiormq.exceptions.ChannelNotFoundEntity:
                continue
            await channel.close()
    finally:
        await connection.close()
