"""Connection cuts under load: every confirmed publish runs, and nothing runs twice in a worker.

A producer publishes at about 400 tasks a second while workers consume a quorum queue;
`rabbitmqctl close_all_connections` cuts every connection three times. Each cut loses the acks
of the deliveries whose tasks were running (the broker delivers them again, often to the same
worker while the first run goes on) and the confirms of the publishes in flight (the producer
publishes them again). A worker settles such a copy by its first run's outcome instead of
running it again (`hare.worker.runs`):

* one worker: **0 duplicates**;
* two workers: a task runs twice only when the copy went to the other worker, so duplicates
  are at most what the two held unsettled, plus the producer's re-sent publishes, per cut.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.apps.fault_app import Ledger
from tests.faults.conftest import (
    Broker,
    Figures,
    Workers,
    finish,
    produce_paced,
    producer_app,
)

pytestmark = [pytest.mark.amqp, pytest.mark.fault, pytest.mark.anyio]

RATE = 400  # tasks a second, from the producer as a whole
LOOPS = 8  # concurrent publishing loops (each waits for its confirm)
CONCURRENCY = 16
CUTS = 3
#: Seconds of load before the first cut, and between cuts.
WARMUP, BETWEEN = 1.5, 1.5


@pytest.mark.timeout(180)
@pytest.mark.parametrize("worker_count", [1, 2], ids=["one worker", "two workers"])
async def test_connection_cuts_lose_nothing_and_a_worker_runs_nothing_twice(
    fault_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    broker: Broker,
    cleanup: list[str],
    figures: Figures,
    worker_count: int,
) -> None:
    queue = f"cuts-{unique}"
    cleanup.append(queue)
    started = [
        workers.start(queue, name=f"w{n}", concurrency=CONCURRENCY) for n in range(worker_count)
    ]
    app = producer_app(fault_url, queue)
    sent: dict[str, float] = {}
    stop = asyncio.Event()
    try:
        for worker in started:
            await worker.wait_ready()
        producing = asyncio.create_task(produce_paced(app, "k", stop, sent, rate=RATE, loops=LOOPS))
        began = time.monotonic()
        await asyncio.sleep(WARMUP)
        for _ in range(CUTS):
            await broker.close_connections()
            await asyncio.sleep(BETWEEN)
        stop.set()
        failures = await producing
        seconds = time.monotonic() - began
        alive, codes = await finish(ledger, set(sent), started)
    finally:
        await app.aclose()

    ledger.refresh()
    missing = sorted(set(sent) - ledger.ended())
    duplicates = {k: runs for k, runs in ledger.duplicates().items() if k in sent}
    settled_copies = sum(worker.log().count("after it ran here") for worker in started)
    figures(
        "connection cuts",
        queue_type="quorum",
        workers=worker_count,
        concurrency=CONCURRENCY,
        cuts=CUTS,
        published=len(sent),
        publish_failures=failures,
        rate=round(len(sent) / seconds),
        lost=len(missing),
        duplicates=len(duplicates),
        copies_settled_without_running=settled_copies,
        exit_codes=codes,
    )
    logs = "\n".join(worker.log_tail(40) for worker in started)
    assert not missing, (len(missing), missing[:20], logs)
    assert all(alive), logs
    assert codes == [0] * worker_count, logs
    assert len(sent) >= RATE * (WARMUP + CUTS * BETWEEN) * 0.5  # the load was on
    if worker_count == 1:
        assert duplicates == {}, (duplicates, logs)
    else:
        # Per cut, each worker held at most its prefetch unsettled, and each loop had at most
        # one publish unconfirmed; only copies that went to the other worker ran again.
        bound = CUTS * (worker_count * CONCURRENCY + LOOPS)
        assert len(duplicates) <= bound, (len(duplicates), logs)
        assert all(len(runs) == 2 for runs in duplicates.values()), duplicates
