"""Mixed fleets with hare's default settings: nobody sets `queue_type`.

A native `Hare` app declares the queues it creates as quorum queues with hare's arguments,
which Celery's classic declaration does not match (PRECONDITION_FAILED on redeclare). The
classes of use a migration starts with must work all the same:

* a hare client publishes into a queue a Celery worker declared (a publisher uses a queue that
  exists as it is, and declares only a missing one);
* a hare worker joins a queue Celery workers already serve (it consumes it as it is, warns once
  what differs, and counts redeliveries itself);
* a Celery client publishes into a queue a hare worker declared: a hare_compat app declares its
  queues as Celery does, so Celery's client (which declares the queue on its first publish)
  is not refused.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from celery import Celery

from hare import Hare
from tests.interop import hare_side
from tests.interop.harness import Fleet, WorkerProcess

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

COMPAT_APP = "tests.interop.compat_side:app"


@pytest.fixture(scope="module")
def workers(fleet: Fleet) -> Fleet:
    # A Celery worker declares its queue first, as in a fleet before the migration.
    fleet.start_celery([fleet.queue("celery-owned")], concurrency=2)
    fleet.wait_consuming()
    # A hare worker with hare's defaults joins it; another one serves a queue of its own.
    fleet.start_hare([fleet.queue("celery-owned")], name="joiner", queue_type=None)
    fleet.start_hare([fleet.queue("hare-owned")], name="own", queue_type=None)
    # A migrated project (hare_compat, Celery's defaults) serves a queue it declared.
    fleet.start_hare([fleet.queue("compat-owned")], name="compat", queue_type=None, app=COMPAT_APP)
    fleet.wait_consuming()
    return fleet


@pytest.fixture
async def default_client(workers: Fleet) -> AsyncIterator[Hare]:
    """A hare client as the README sets one up: no queue type given."""
    app = hare_side.make_app(workers.url, workers.queue("hare-owned"), hare_defaults=True)
    try:
        yield app
    finally:
        await app.aclose()
        app.close()


def _worker(fleet: Fleet, name: str) -> WorkerProcess:
    return next(w for w in fleet.workers if w.name == name)


async def test_a_hare_client_publishes_into_a_queue_celery_declared(
    workers: Fleet, default_client: Hare
) -> None:
    keys = [f"to-celery-{uuid.uuid4().hex[:8]}-{n}" for n in range(20)]
    for key in keys:
        await default_client.asend_task(
            "interop.record", kwargs={"key": key}, queue=workers.queue("celery-owned")
        )
    for key in keys:
        assert len(await workers.runs(key)) == 1
    ran_on = {workers.ledger.of(key)[0].worker for key in keys}
    assert ran_on <= {"celery", "hare"}


async def test_a_hare_worker_joins_a_queue_celery_serves_and_says_what_differs(
    workers: Fleet, celery_client: Celery
) -> None:
    joiner = _worker(workers, "joiner")
    assert joiner.alive
    log = joiner.log()
    assert "exists with other arguments than hare's" in log, joiner.log_tail()
    assert "inequivalent arg" in log
    assert log.count("exists with other arguments than hare's") == 1
    # Both take work from the shared queue, each task once.
    keys = [f"shared-{uuid.uuid4().hex[:8]}-{n}" for n in range(40)]
    for key in keys:
        celery_client.send_task(
            "interop.record",
            kwargs={"key": key, "sleep_ms": 20},
            queue=workers.queue("celery-owned"),
        )
    entries = [(await workers.runs(key))[0] for key in keys]
    assert {e.worker for e in entries} == {"celery", "hare"}
    assert all(len(workers.ledger.of(key)) == 1 for key in keys)


async def test_a_celery_client_publishes_into_a_queue_a_hare_compat_worker_declared(
    workers: Fleet, celery_client: Celery
) -> None:
    keys = [f"to-compat-{uuid.uuid4().hex[:8]}-{n}" for n in range(10)]
    for key in keys:
        celery_client.send_task(
            "interop.record", kwargs={"key": key}, queue=workers.queue("compat-owned")
        )
    for key in keys:
        runs = await workers.runs(key)
        assert [e.worker for e in runs] == ["hare"]


async def test_a_hare_client_and_worker_with_defaults_use_hare_s_queue(
    workers: Fleet, default_client: Hare
) -> None:
    key = f"own-{uuid.uuid4().hex[:8]}"
    await default_client.asend_task("interop.record", kwargs={"key": key})
    assert [e.worker for e in await workers.runs(key)] == ["hare"]
    assert "exists with other arguments" not in _worker(workers, "own").log()
