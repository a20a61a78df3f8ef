"""The broker goes away under load: a restart (`stop_app` / `start_app`) or closed connections.

Producers publish and workers consume throughout, one of each per queue type. Every publish
that returned ran, and each worker came back by itself: same process, its log saying it
consumes again, and tasks started after the fault. A lost connection leaves copies behind:
deliveries the worker held unsettled come again, and publishes whose confirm was lost are sent
again. A worker settles such a copy by its first run's outcome instead of running it again
(`hare.worker.runs`): with one worker per queue, nothing runs twice.

A task running when the connection dies runs to its end: aiormq cancels the tasks it runs
consumer callbacks in when their connection closes, and hare's worker shields the delivery's
processing from that. Its ack then cannot reach the broker, which delivers it again; the copy
waits for the run and is acked by its outcome. The figures count runs that never ended in a
live process (`cut_short`), which must be 0.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from hare import Hare, HareError
from hare.core.topology import DEAD_SUFFIX
from hare.testing import eventually
from tests.apps.fault_app import Ledger
from tests.faults.conftest import (
    Broker,
    Figures,
    WorkerProcess,
    Workers,
    producer_app,
)

pytestmark = [pytest.mark.amqp, pytest.mark.fault, pytest.mark.anyio]

CONCURRENCY = 8
#: Concurrent publishing loops per queue, each pausing between publishes to keep the pace
#: below what the worker drains, so the queues stay short and the run stays bounded.
PRODUCERS, PACE = 2, 0.01
#: Finished tasks per queue before the first fault, and between faults.
WARMUP, PROGRESS = 150, 100
#: Connection closes in the "connections closed" scenario.
CLOSES = 3

_LOST = re.compile(r"^(\S+ \S+) WARNING hare\.worker: lost the broker connection;", re.MULTILINE)
_RESUMED = re.compile(r"^(\S+ \S+) WARNING hare\.worker: consuming again after", re.MULTILINE)


@dataclass
class Stream:
    """One queue type: its queue, producer app, worker, and what the producer achieved."""

    queue_type: str
    queue: str
    app: Hare
    prefix: str
    worker: WorkerProcess | None = None
    sent: dict[str, float] = field(default_factory=dict)  # key -> when the publish returned
    failed: dict[str, str] = field(default_factory=dict)  # key -> the exception

    def ended(self, ledger: Ledger) -> int:
        return sum(1 for key in ledger.ended() if key.startswith(self.prefix))

    def sent_after(self, moment: float) -> int:
        return sum(1 for when in self.sent.values() if when > moment)

    def worker_of(self) -> WorkerProcess:
        assert self.worker is not None
        return self.worker


@dataclass
class Fault:
    """When a fault was injected and when it was over (the broker back, the close done)."""

    began: float
    over: float
    over_wall: float


async def produce(stream: Stream, stop: asyncio.Event) -> None:
    counter = itertools.count()
    rng = random.Random(stream.queue_type)

    async def loop() -> None:
        while not stop.is_set():
            key = f"{stream.prefix}{next(counter)}"
            try:
                await stream.app.asend_task("fault.work", [key, rng.randint(5, 30)], task_id=key)
            except HareError as exc:
                stream.failed[key] = repr(exc)
            else:
                stream.sent[key] = time.monotonic()
            await asyncio.sleep(PACE)

    await asyncio.gather(*(loop() for _ in range(PRODUCERS)))


def outages(worker: WorkerProcess) -> list[tuple[float, float]]:
    """(lost, consuming again) wall times of each connection loss in the worker's log."""
    log = worker.log()
    lost = [_wall(stamp) for stamp in _LOST.findall(log)]
    back = [_wall(stamp) for stamp in _RESUMED.findall(log)]
    return list(zip(lost, back, strict=False))


def _wall(stamp: str) -> float:
    """The epoch time of a log timestamp (logging's default asctime, local time)."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


async def inject(kind: str, broker: Broker, streams: list[Stream], ledger: Ledger) -> list[Fault]:
    faults: list[Fault] = []
    for _ in range(1 if kind == "broker restart" else CLOSES):
        targets = [stream.ended(ledger) + PROGRESS for stream in streams]
        if faults:  # the workers consumed again since the last fault: load is on again

            def progressed(targets: list[int] = targets) -> bool:
                ledger.refresh()
                return all(s.ended(ledger) >= t for s, t in zip(streams, targets, strict=True))

            await eventually(progressed, within=60)
        began = time.monotonic()
        if kind == "broker restart":
            await broker.restart()
        else:
            await broker.close_connections()
        faults.append(Fault(began, time.monotonic(), time.time()))
    return faults


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["broker restart", "connections closed"])
async def test_every_confirmed_publish_runs_and_workers_resume_by_themselves(
    fault_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    broker: Broker,
    cleanup: list[str],
    figures: Figures,
    kind: str,
) -> None:

    def new_stream(queue_type: str) -> Stream:
        queue = f"outage-{unique}-{queue_type}"
        app = producer_app(fault_url, queue, queue_type=queue_type)
        return Stream(queue_type, queue, app, prefix=queue_type[0])

    streams = [new_stream("classic"), new_stream("quorum")]
    for stream in streams:
        cleanup.append(stream.queue)
        stream.worker = workers.start(
            stream.queue,
            name=stream.queue_type,
            queue_type=stream.queue_type,
            concurrency=CONCURRENCY,
        )
    stop = asyncio.Event()
    try:
        for stream in streams:
            await stream.worker_of().wait_ready()
        async with asyncio.TaskGroup() as group:
            for stream in streams:
                group.create_task(produce(stream, stop))
            try:

                def warmed_up() -> bool:
                    ledger.refresh()
                    return all(stream.ended(ledger) >= WARMUP for stream in streams)

                await eventually(warmed_up, within=60)
                faults = await inject(kind, broker, streams, ledger)
                last = faults[-1]

                def resumed() -> bool:
                    ledger.refresh()
                    return all(
                        stream.sent_after(last.over) >= PROGRESS
                        and ledger.first_start_after(last.over, [stream.worker_of().pid])
                        for stream in streams
                    )

                await eventually(resumed, within=90)
            finally:
                stop.set()
        sent = {key for stream in streams for key in stream.sent}
        try:
            await eventually(lambda: sent <= ledger.refresh().ended(), within=60, interval=0.05)
        except AssertionError:
            pass  # reported below, with what is missing
        ready = [await stream.worker_of().ready() for stream in streams]
        alive = [stream.worker_of().alive for stream in streams]
        codes = [await stream.worker_of().stop() for stream in streams]
        transport = (await streams[0].app.publisher()).transport
        dead = [await transport.message_count(s.queue + DEAD_SUFFIX) for s in streams]
    finally:
        for stream in streams:
            await stream.app.aclose()

    ledger.refresh()
    ended = ledger.ended()
    duplicates = ledger.duplicates()
    per_stream: list[dict[str, Any]] = []
    for stream in streams:
        worker = stream.worker_of()
        back = outages(worker)
        per_stream.append(
            {
                "queue_type": stream.queue_type,
                "published": len(stream.sent),
                "publish_failures": len(stream.failed),
                "lost": len(set(stream.sent) - ended),
                "duplicates": sum(1 for key in duplicates if key.startswith(stream.prefix)),
                # Runs that started and never ended although their process lives on: a
                # connection loss that cut them short (see the module docstring): none.
                "cut_short": sum(1 for run in ledger.of_pid(worker.pid) if run.ended is None),
                "resumes": len(back),
                # From the worker's log (millisecond timestamps): from losing the connection
                # to consuming again, and from the broker answering again (after start_app)
                # to consuming again.
                "seconds_without_connection": [round(b - lost, 3) for lost, b in back],
                "seconds_after_broker_back": [
                    round(b - fault.over_wall, 3)
                    for (_, b), fault in zip(back, faults, strict=False)
                ],
                "exit_code": codes[streams.index(stream)],
            }
        )
    figures(
        kind,
        faults=len(faults),
        fault_seconds=[round(f.over - f.began, 2) for f in faults],
        concurrency=CONCURRENCY,
        streams=per_stream,
    )

    for stream, figure, is_ready, is_alive in zip(streams, per_stream, ready, alive, strict=True):
        worker = stream.worker_of()
        # Every publish that returned ran, to its end.
        missing = sorted(set(stream.sent) - ended)
        assert not missing, (stream.queue_type, len(missing), missing[:20], worker.log_tail())
        # The worker came back by itself: same process, consuming again after each fault.
        assert is_alive and is_ready, (stream.queue_type, worker.log_tail())
        assert figure["resumes"] == len(faults), (stream.queue_type, worker.log_tail())
        assert ledger.first_start_after(faults[-1].over, [worker.pid]) is not None
        # No run was cut off at an await by the connection loss.
        assert figure["cut_short"] == 0, (stream.queue_type, worker.log_tail())
    # A worker settles a copy of a delivery it ran (redelivered after the lost connection,
    # or published again by a producer whose confirm was lost) by that run's outcome: with
    # one worker per queue, nothing runs twice (`hare.worker.runs`).
    for figure in per_stream:
        assert figure["duplicates"] == 0, per_stream
    assert codes == [0, 0]
    assert dead == [0, 0]
