"""An app for the fault tests (`tests/faults`): tasks that log every execution to a ledger.

Every run of a task appends `start <key> <pid> <t>` when it begins and `end <key> <pid> <t>`
when its function returns, `t` being `time.monotonic()` (one clock for every process on the
machine). Each line is one write(2) on an O_APPEND file, so lines from threads and processes
never interleave, and a worker killed mid-task leaves a `start` without its `end`.

Configured by environment variables: FAULT_LEDGER (the ledger file, required to run a task),
FAULT_QUEUE (default "fault"), and hare's own `HARE_*` variables (`HARE_BROKER_URL`,
`HARE_QUEUE_TYPE`, `HARE_DELIVERY_LIMIT`). `Ledger` reads the file back, for the tests.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hare import Hare, Reject

__all__ = ("Ledger", "Run", "app", "crash", "fail", "requeue", "work", "work_sync")

app = Hare("fault", default_queue=os.environ.get("FAULT_QUEUE", "fault"))


@functools.cache
def _ledger() -> int:
    return os.open(os.environ["FAULT_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _record(event: str, key: str) -> None:
    # One write(2) of less than PIPE_BUF bytes on an O_APPEND file: atomic, never torn.
    os.write(_ledger(), f"{event} {key} {os.getpid()} {time.monotonic():.6f}\n".encode())


@app.task(name="fault.work")
async def work(key: str, ms: int) -> None:
    """Run for `ms` milliseconds on the event loop."""
    _record("start", key)
    await asyncio.sleep(ms / 1000)
    _record("end", key)


@app.task(name="fault.work_sync")
def work_sync(key: str, ms: int) -> None:
    """Run for `ms` milliseconds in the worker's thread pool."""
    _record("start", key)
    time.sleep(ms / 1000)
    _record("end", key)


@app.task(name="fault.fail")
def fail(key: str) -> None:
    """Raise, so that the worker dead-letters the message (its run is in the ledger)."""
    _record("start", key)
    _record("end", key)
    raise RuntimeError(f"fault.fail {key}")


@app.task(name="fault.requeue")
def requeue(key: str) -> None:
    """Give the message back to its queue every time: the broker dead-letters it once it was
    delivered `delivery_limit` times (a quorum queue's `x-delivery-limit`)."""
    _record("start", key)
    _record("end", key)
    raise Reject("fault.requeue", requeue=True)


@app.task(name="fault.crash")
def crash(key: str) -> None:
    """Kill the worker process that runs it, as a segfault or the OOM killer would."""
    _record("start", key)
    os.kill(os.getpid(), signal.SIGKILL)


# -- reading the ledger back (in the tests) ----------------------------------------------


@dataclass
class Run:
    """One execution of a task, as the ledger tells it."""

    key: str
    pid: int
    started: float
    ended: float | None = None


class Ledger:
    """Reads the fault app's ledger incrementally: every execution, by key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: dict[str, list[Run]] = {}
        self._open: dict[tuple[str, int], list[Run]] = {}
        self._offset = 0
        self._partial = b""

    def refresh(self) -> Ledger:
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return self
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._parse(line.decode())
        return self

    def _parse(self, line: str) -> None:
        event, key, pid_text, moment_text = line.split()
        pid, moment = int(pid_text), float(moment_text)
        if event == "start":
            run = Run(key, pid, moment)
            self.runs.setdefault(key, []).append(run)
            self._open.setdefault((key, pid), []).append(run)
        elif event == "end":
            # The latest open run of the key in that process: an earlier one still open was
            # interrupted (a connection loss cancels running async tasks) and never ends.
            self._open[(key, pid)].pop().ended = moment
        else:
            raise AssertionError(f"unknown ledger line {line!r}")

    def ended(self) -> set[str]:
        """Keys that ran to the end at least once."""
        return {key for key, runs in self.runs.items() if any(r.ended is not None for r in runs)}

    def starts(self) -> Counter[str]:
        """How many times each key started."""
        return Counter({key: len(runs) for key, runs in self.runs.items()})

    def duplicates(self) -> dict[str, list[Run]]:
        """Keys that started more than once, with their runs."""
        return {key: runs for key, runs in self.runs.items() if len(runs) > 1}

    def of_pid(self, pid: int) -> list[Run]:
        return [run for runs in self.runs.values() for run in runs if run.pid == pid]

    def pids(self) -> set[int]:
        return {run.pid for runs in self.runs.values() for run in runs}

    def first_start_after(self, moment: float, pids: Sequence[int] | None = None) -> float | None:
        times = [
            run.started
            for runs in self.runs.values()
            for run in runs
            if run.started > moment and (pids is None or run.pid in pids)
        ]
        return min(times) if times else None
