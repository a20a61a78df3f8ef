"""`hare worker` processes of a 1 s schedule (`benchmarks.periodic_app`) and their ledger, for
the broker and cluster tests of periodic v2: which process leads, and what ran."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.periodic import RECORD
from hare.periodic.ticks import slot_name, tick_queue_name
from hare.transport.amqp.transport import AmqpTransport
from tests.amqp.helpers import WorkerProcess

__all__ = ("LEADS", "PeriodicFleet", "Tally", "tally")

ROOT = Path(__file__).resolve().parent.parent.parent
#: What a worker logs when it takes the lead, and when it loses it (`hare.periodic.election`).
LEADS = "now leads the schedules"
LEFT = "no longer leads the schedules"
SCHEDULE = "bench.second"


@dataclass(frozen=True)
class Tally:
    """The runs of a 1 s schedule: which whole seconds ran, how many twice, which never."""

    occurrences: list[int]
    duplicates: int
    missed: list[int]


def tally(records: list[tuple[float, float, float]]) -> Tally:
    per_second = Counter(round(occurrence) for _, occurrence, _ in records)
    if not per_second:
        return Tally([], 0, [])
    first, last = min(per_second), max(per_second)
    return Tally(
        occurrences=sorted(per_second),
        duplicates=sum(count - 1 for count in per_second.values()),
        missed=[s for s in range(first, last + 1) if s not in per_second],
    )


class PeriodicFleet:
    """Worker processes of one app with a 1 s schedule, recording runs in one ledger."""

    def __init__(self, url: str, tmp: Path, *, watchdog: float) -> None:
        self.url = url
        self.app = "periodic-" + uuid.uuid4().hex[:8]
        self.watchdog = watchdog
        self.ledger = tmp / f"{self.app}.bin"
        self.ledger.touch()
        self.pods: list[WorkerProcess] = []

    def start(self, url: str | None = None) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HARE_", "BENCH_"))}
        env |= {
            "HARE_BROKER_URL": url or self.url,
            "BENCH_APP": self.app,
            "BENCH_FILE": str(self.ledger),
            "BENCH_INTERVAL": "1",
            "BENCH_WATCHDOG": str(self.watchdog),
            "PYTHONPATH": str(ROOT),
        }
        args = ("-Q", self.app + ".work", "--loglevel", "info")
        pod = WorkerProcess("benchmarks.periodic_app:app", *args, env=env, cwd=ROOT)
        self.pods.append(pod)
        return pod

    def leading(self) -> list[WorkerProcess]:
        """The running pods whose last word on the lead is that they took it."""
        found = []
        for pod in self.pods:
            said = [line for line in list(pod.lines) if LEADS in line or LEFT in line]
            if pod.process.poll() is None and said and LEADS in said[-1]:
                found.append(pod)
        return found

    async def leader(
        self, within: float = 60.0, *, not_: WorkerProcess | None = None
    ) -> WorkerProcess:
        """The one pod that leads (other than `not_`), waited for."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = [pod for pod in self.leading() if pod is not not_]
            if len(found) == 1:
                return found[0]
            await asyncio.sleep(0.05)
        logs = "\n---\n".join("".join(pod.lines[-30:]) for pod in self.pods)
        raise AssertionError(f"no single leader within {within}s:\n{logs}")

    def kill(self, pod: WorkerProcess) -> None:
        pod.process.send_signal(signal.SIGKILL)
        pod.process.wait(timeout=30)

    def records(self) -> list[tuple[float, float, float]]:
        data = self.ledger.read_bytes()
        size = RECORD.size
        return [RECORD.unpack_from(data, i) for i in range(0, len(data) - len(data) % size, size)]

    def stop(self) -> list[int]:
        """SIGTERM every pod still running; the exit codes (-9: killed before)."""
        return [pod.stop() for pod in self.pods]

    async def delete_queues(self, url: str | None = None) -> None:
        transport = AmqpTransport(url or self.url)
        await transport.connect()
        try:
            for queue in (
                slot_name(self.app, SCHEDULE),
                tick_queue_name(self.app),
                self.app + ".work",
                self.app + ".work.dead",
            ):
                await transport.delete_queue(queue)
        finally:
            await transport.close()
