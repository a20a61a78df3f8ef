"""Event fan-out through faults: 300 events to 3 handlers (900 runs) lose nothing and run
nothing twice through a SIGTERM drain of a worker (with another one taking over) and through
connection cuts (`close_all_connections` of this suite's vhost) that hit the workers and the
emitting process alike. Judged by the ledger, per handler."""

from __future__ import annotations

import asyncio
import random

import pytest

from hare import Hare
from tests.apps.events_app import HANDLERS
from tests.apps.fault_app import Ledger
from tests.faults.conftest import Broker, Figures, WorkerProcess, Workers, finish

pytestmark = [pytest.mark.amqp, pytest.mark.fault, pytest.mark.anyio]

APP = "tests.apps.events_app:app"
EVENTS = 300
CONCURRENCY = 8


def handler_queues(name: str) -> list[str]:
    return [f"hare.ev.{name}.tests.apps.events_app.{handler}" for handler in HANDLERS]


async def emit_all(url: str, name: str, keys: list[str]) -> int:
    """Emit one event per key (50 at a time, each confirmed); how many raised."""
    app = Hare("emitter", broker=url, environ={}, connect_timeout=5)
    rng = random.Random(7)
    failures = 0
    try:
        for first in range(0, len(keys), 50):
            done = await asyncio.gather(
                *(
                    app.aemit(f"{name}.paid", {"key": key, "ms": rng.randint(20, 60)})
                    for key in keys[first : first + 50]
                ),
                return_exceptions=True,
            )
            failures += sum(isinstance(one, BaseException) for one in done)
    finally:
        await app.aclose()
    return failures


def expected(keys: list[str]) -> set[str]:
    return {f"{handler}:{key}" for handler in HANDLERS for key in keys}


@pytest.mark.timeout(120)
async def test_a_sigterm_drain_during_fan_out_loses_nothing_and_runs_nothing_twice(
    fault_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
) -> None:
    name = f"evdrain-{unique}"
    cleanup.extend([name, *handler_queues(name)])

    def start(worker: str) -> WorkerProcess:
        return workers.start(
            name, name=worker, app=APP, args=["--event-handlers"], concurrency=CONCURRENCY
        )

    first, second = start("w1"), start("w2")
    await first.wait_ready()
    await second.wait_ready()
    keys = [f"k{i}" for i in range(EVENTS)]
    failures = await emit_all(fault_url, name, keys)
    await asyncio.to_thread(_wait_ended, ledger, 250)
    code = await first.stop()  # SIGTERM mid fan-out: drain, hand back what has not started
    third = start("w3")
    await third.wait_ready()
    alive, codes = await finish(ledger, expected(keys), [second, third])
    ledger.refresh()
    missing = sorted(expected(keys) - ledger.ended())
    duplicates = {k: runs for k, runs in ledger.duplicates().items() if k in expected(keys)}
    figures("events drain", events=EVENTS, lost=len(missing), duplicates=len(duplicates))
    logs = "\n".join(w.log_tail(30) for w in (first, second, third))
    assert failures == 0
    assert code == 0, logs
    assert not missing, (len(missing), missing[:20], logs)
    assert duplicates == {}, (duplicates, logs)
    assert all(alive) and codes == [0, 0], logs


@pytest.mark.timeout(120)
async def test_connection_cuts_during_fan_out_lose_nothing_and_run_nothing_twice(
    fault_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    broker: Broker,
    cleanup: list[str],
    figures: Figures,
) -> None:
    name = f"evcuts-{unique}"
    cleanup.extend([name, *handler_queues(name)])
    worker = workers.start(name, app=APP, args=["--event-handlers"], concurrency=CONCURRENCY * 2)
    await worker.wait_ready()
    keys = [f"k{i}" for i in range(EVENTS)]
    emitting = asyncio.create_task(emit_all(fault_url, name, keys))
    await asyncio.to_thread(_wait_ended, ledger, 150)
    await broker.close_connections()  # the worker's and the emitter's
    await asyncio.to_thread(_wait_ended, ledger, 450)
    await broker.close_connections()
    failures = await emitting
    alive, codes = await finish(ledger, expected(keys), [worker])
    ledger.refresh()
    missing = sorted(expected(keys) - ledger.ended())
    duplicates = {k: runs for k, runs in ledger.duplicates().items() if k in expected(keys)}
    settled = worker.log().count("after it ran here")
    figures(
        "events connection cuts",
        events=EVENTS,
        lost=len(missing),
        duplicates=len(duplicates),
        copies_settled_without_running=settled,
    )
    logs = worker.log_tail(40)
    assert failures == 0, logs
    assert not missing, (len(missing), missing[:20], logs)
    assert duplicates == {}, (duplicates, logs)
    assert alive == [True] and codes == [0], logs


def _wait_ended(ledger: Ledger, runs: int, within: float = 60.0) -> None:
    """Block until `runs` runs ended (in a thread: the loop keeps emitting meanwhile)."""
    import time

    deadline = time.monotonic() + within
    while len(ledger.refresh().ended()) < runs:
        assert time.monotonic() < deadline, f"fewer than {runs} runs ended within {within}s"
        time.sleep(0.02)
