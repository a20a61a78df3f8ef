"""What the figures were measured on: broker, machine, interpreters, package versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import broker, peers_env
from hare.worker.loops import loop_factory

HARE_PACKAGES = ["hare", "aiormq", "pamqp", "uvloop", "psutil"]
PEER_PACKAGES = [
    "celery",
    "kombu",
    "amqp",
    "billiard",
    "dramatiq",
    "pika",
    "taskiq",
    "taskiq-aio-pika",
    "aio-pika",
    "aiormq",
    "pamqp",
    "uvloop",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    import psutil

    return float(psutil.virtual_memory().total) / 2**30


def snapshot(peers_python: Path | None) -> dict[str, Any]:
    peers: dict[str, Any] = {}
    if peers_python is not None:
        peers = {
            "python": _python_of(peers_python),
            "packages": peers_env.versions(peers_python, PEER_PACKAGES),
        }
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "rabbitmq": broker.rabbitmq_version(),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "hare_packages": peers_env.versions(sys.executable, HARE_PACKAGES),
        # What `hare worker --loop auto` and the raw loop's consumer run on.
        "worker_loop": loop_factory("auto")[0],
        "peers": peers,
        "loadavg_start": os.getloadavg()[0],
    }


def _python_of(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
