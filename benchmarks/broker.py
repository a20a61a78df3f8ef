"""Benchmark plumbing: a private vhost, `rabbitmqctl` readings, a `hare worker` subprocess.

Benchmarks run in their own vhost (`hare-bench`), created at the start and deleted at the end,
so they never purge or park anything of anyone else's, and messages scheduled an hour ahead do
not outlive the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
VHOST = "hare-bench"


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


@contextmanager
def private_vhost(
    base_url: str = "amqp://guest:guest@127.0.0.1:5672/", name: str = VHOST
) -> Iterator[str]:
    """A fresh vhost `name` for the run; yields its AMQP URL and deletes it (and all in it)
    after. A benchmark that may run beside `benchmarks run` names a vhost of its own."""
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, timeout=60)
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield base_url.rstrip("/") + "/" + name
    finally:
        rabbitmqctl("delete_vhost", name)


def queue_counts(queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of `queue` in the benchmark vhost."""
    out = rabbitmqctl(
        "list_queues",
        "-p",
        VHOST,
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "--no-table-headers",
    )
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    return 0, 0


def rabbitmq_version() -> str:
    return rabbitmqctl("version").strip()


@dataclass
class WorkerProcess:
    process: subprocess.Popen[str]
    record_file: str

    @property
    def rss_mb(self) -> float:
        return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode


@contextmanager
def hare_worker(
    url: str,
    queue: str,
    *,
    concurrency: int = 64,
    processes: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[WorkerProcess]:
    """`hare worker benchmarks.bench_app:app` in a subprocess, writing records to a temp file
    (`env`: more environment variables, e.g. `HARE_*` settings)."""
    handle, record_file = tempfile.mkstemp(prefix="hare-bench-", suffix=".bin")
    os.close(handle)
    env = {
        **os.environ,
        **(env or {}),
        "HARE_BROKER_URL": url,
        "BENCH_QUEUE": queue,
        "BENCH_FILE": record_file,
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable,
        "-m",
        "hare",
        "worker",
        "benchmarks.bench_app:app",
        "-Q",
        queue,
        "-c",
        str(concurrency),
        "--loglevel",
        "warning",
    ]
    if processes:
        command += ["--processes", str(processes)]
    process = subprocess.Popen(command, env=env, cwd=ROOT, text=True)
    worker = WorkerProcess(process, record_file)
    try:
        yield worker
    finally:
        worker.stop()
        os.unlink(record_file)


def wait_for_records(path: str, n: int, timeout: float) -> int:
    """Wait until `path` holds `n` 16-byte records; return how many it holds."""
    deadline = time.monotonic() + timeout
    while True:
        count = os.path.getsize(path) // 16
        if count >= n or time.monotonic() > deadline:
            return count
        time.sleep(0.05)
