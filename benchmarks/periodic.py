"""Periodic ticks across independent worker processes: every occurrence once, on time.

    python -m benchmarks periodic [--seconds 60] [--pods 4] [--skew 0.3] [--chaos]

Starts `--pods` `hare worker` processes of a 1 s schedule (the last one with its wall clock
`--skew` seconds ahead), lets them run, and reads the ledger of runs: each run records when it
started and the occurrence it ran for (from its message), so a run made late by a busy machine
is not taken for the next second's. With `--chaos` it SIGKILLs one pod a third of the way in,
SIGTERMs another at two thirds, and starts two new ones. Reports occurrences fired,
duplicates (an occurrence run twice), missed ones, and lateness (start - occurrence; the
skewed pod offers ticks by its own clock, so its runs may look early or late by the skew).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from typing import Any

from benchmarks import broker

#: One run in the ledger `periodic_app` writes: real start time, occurrence (epoch s),
#: generation of the pod that ran it.
RECORD = struct.Struct("<ddd")

ROOT = broker.ROOT


def start_pod(
    url: str,
    app: str,
    ledger: str,
    skew: float,
    *,
    interval: float = 1,
    generation: int = 0,
    watchdog: float = 5,
    health_port: int | None = None,
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "HARE_BROKER_URL": url,
        "BENCH_APP": app,
        "BENCH_FILE": ledger,
        "BENCH_CLOCK_SKEW": str(skew),
        "PYTHONPATH": str(ROOT),
        "BENCH_INTERVAL": str(interval),
        "HARE_GENERATION": str(generation),
        "BENCH_WATCHDOG": str(watchdog),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hare",
            "worker",
            "benchmarks.periodic_app:app",
            "-Q",
            app + ".work",
            "--loglevel",
            "warning",
            *(["--health-port", str(health_port)] if health_port else []),
        ],
        env=env,
        cwd=ROOT,
        text=True,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(port: int, timeout: float = 60) -> None:
    """Return once the worker's `/readyz` answers 200 (it consumes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the worker with health port {port} was not ready in {timeout}s")


def run_fleet(url: str, *, seconds: float, pods: int, skew: float, chaos: bool) -> dict[str, Any]:
    app = "bench-periodic-" + uuid.uuid4().hex[:6]
    handle, ledger = tempfile.mkstemp(prefix="hare-periodic-", suffix=".bin")
    os.close(handle)
    fleet = [start_pod(url, app, ledger, skew if i == pods - 1 else 0.0) for i in range(pods)]
    events: list[tuple[float, str]] = []
    started = time.time()
    try:
        if chaos:
            time.sleep(seconds / 3)
            fleet[0].send_signal(signal.SIGKILL)
            events.append((time.time(), "SIGKILL pod 0"))
            time.sleep(seconds / 3)
            fleet[1].send_signal(signal.SIGTERM)
            events.append((time.time(), "SIGTERM pod 1"))
            fleet += [start_pod(url, app, ledger, 0.0) for _ in range(2)]
            events.append((time.time(), "started 2 pods"))
            time.sleep(seconds / 3)
        else:
            time.sleep(seconds)
    finally:
        for pod in fleet:
            if pod.poll() is None:
                pod.send_signal(signal.SIGTERM)
        codes = [pod.wait(60) for pod in fleet]
    with open(ledger, "rb") as file:
        data = file.read()
    os.unlink(ledger)
    records = _records(data)
    # A duplicate is an occurrence run twice, a miss one never run (1 s schedule: every whole
    # second between the first and the last), whatever the machine's load did to the timing.
    per_second = Counter(round(occurrence) for _, occurrence, _ in records)
    first, last = min(per_second), max(per_second)
    missed = [s for s in range(first, last + 1) if s not in per_second]
    lateness_ms = sorted((t - occurrence) * 1000 for t, occurrence, _ in records)
    return {
        "app": app,
        "seconds": seconds,
        "pods": pods,
        "skew_s": skew,
        "chaos": chaos,
        "boot_s": round(first - started, 1),
        "occurrences": len(per_second),
        "duplicates": sum(c - 1 for c in per_second.values()),
        "missed": [m - first for m in missed],
        "events_at_s": [(round(t - started, 1), what) for t, what in events],
        "lateness_p50_ms": round(statistics.median(lateness_ms), 1),
        "lateness_p99_ms": round(
            lateness_ms[min(len(lateness_ms) - 1, round(0.99 * (len(lateness_ms) - 1)))], 1
        ),
        "lateness_min_ms": round(lateness_ms[0], 1),
        "exit_codes": codes,
    }


def run_deploy(
    url: str, *, old_pods: int = 3, before: float = 8, after: float = 24, watchdog: float = 3
) -> dict[str, Any]:
    """Old pods run a 2 s schedule (generation 1); a new pod with a 3 s one (generation 2)
    joins while they keep running. Returns the run times and when the new pod was ready
    (`switched`: its `/readyz` answered, so a slow start-up on a busy machine is not counted
    against the takeover)."""
    app = "bench-deploy-" + uuid.uuid4().hex[:6]
    handle, ledger = tempfile.mkstemp(prefix="hare-deploy-", suffix=".bin")
    os.close(handle)
    pods = [
        start_pod(url, app, ledger, 0.0, interval=2, generation=1, watchdog=watchdog)
        for _ in range(old_pods)
    ]
    try:
        time.sleep(before)
        port = free_port()
        started = time.time()
        pods.append(
            start_pod(
                url,
                app,
                ledger,
                0.0,
                interval=3,
                generation=2,
                watchdog=watchdog,
                health_port=port,
            )
        )
        wait_ready(port)
        switched = time.time()
        time.sleep(after)
    finally:
        for pod in pods:
            pod.send_signal(signal.SIGTERM)
        codes = [pod.wait(60) for pod in pods]
    with open(ledger, "rb") as file:
        data = file.read()
    os.unlink(ledger)
    records = _records(data)
    return {
        "app": app,
        "switched": switched,
        "start_up_s": round(switched - started, 3),
        "watchdog": watchdog,
        "exit_codes": codes,
        "runs": [round(t, 3) for t, _, _ in sorted(records)],
        # (real start time, occurrence, generation) of each run, in start order.
        "records": [(round(t, 3), o, int(g)) for t, o, g in sorted(records)],
    }


def _records(data: bytes) -> list[tuple[float, float, float]]:
    """The runs in a ledger: (real start time, occurrence in epoch s, generation)."""
    size = RECORD.size
    return [RECORD.unpack_from(data, i) for i in range(0, len(data) - len(data) % size, size)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks periodic")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pods", type=int, default=4)
    parser.add_argument("--skew", type=float, default=0.3)
    parser.add_argument("--chaos", action="store_true")
    args = parser.parse_args(argv)
    with broker.private_vhost() as url:
        result = run_fleet(
            url, seconds=args.seconds, pods=args.pods, skew=args.skew, chaos=args.chaos
        )
    print(json.dumps(result, indent=1))
