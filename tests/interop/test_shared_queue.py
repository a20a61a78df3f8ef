"""One queue, two fleets: a Celery worker and a hare worker consume the same classic queue.

Both clients publish to it; every task must run exactly once (retries: exactly twice), on
whichever worker took it, and both workers must take some. This is the middle of a migration.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from celery import Celery, chain

from hare import Hare
from tests.interop.harness import Fleet

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]


@pytest.fixture(scope="module")
def workers(fleet: Fleet) -> Fleet:
    shared = fleet.queue("shared")
    fleet.start_celery([shared], concurrency=4)
    fleet.start_hare([shared], concurrency=4)
    # A hare worker set up as a migration's producers are (delays="eta-header": delayed tasks
    # go straight to the queue with Celery's eta header), alone on a queue of its own.
    fleet.start_hare([fleet.queue("eta-header")], name="h-eta", settings={"delays": "eta-header"})
    fleet.wait_consuming()
    return fleet


def keys(prefix: str, n: int) -> list[str]:
    token = uuid.uuid4().hex[:8]
    return [f"{prefix}-{token}-{i:03d}" for i in range(n)]


async def settled(workers: Fleet, expected: Counter[str], *, within: float = 60.0) -> list[str]:
    """Wait until every key ran as often as `expected` says, then a moment more (a duplicate
    would show); return the worker of each run."""

    def done() -> bool:
        runs = Counter(e.key for e in workers.ledger.entries() if e.key in expected)
        return all(runs[k] >= n for k, n in expected.items())

    await workers.until(done, within=within, what=f"{sum(expected.values())} runs")
    await asyncio.sleep(1.0)
    entries = [e for e in workers.ledger.entries() if e.key in expected]
    assert Counter(e.key for e in entries) == expected
    return [e.worker for e in entries]


async def test_two_hundred_tasks_from_both_clients_each_run_exactly_once(
    workers: Fleet, celery_client: Celery, hare_client: Hare
) -> None:
    shared = workers.queue("shared")
    from_celery, from_hare = keys("c", 100), keys("h", 100)
    for k in from_celery:
        celery_client.send_task(
            "interop.record", (), {"key": k, "sleep_ms": 20}, queue=shared, task_id=k
        )
    await asyncio.gather(
        *(
            hare_client.asend_task(
                "interop.record", (), {"key": k, "sleep_ms": 20}, queue=shared, task_id=k
            )
            for k in from_hare
        )
    )
    ran_on = await settled(workers, Counter(from_celery + from_hare))
    assert {e.id for e in workers.ledger.entries() if e.key in from_celery} == set(from_celery)
    share = Counter(ran_on)
    assert share["celery"] > 0 and share["hare"] > 0, share


async def test_retries_on_a_shared_queue_run_each_task_exactly_twice(
    workers: Fleet, celery_client: Celery, hare_client: Hare
) -> None:
    # Celery's retry is a new message with an eta header; hare's goes through its ladder.
    # Either may be taken by either worker.
    shared = workers.queue("shared")
    from_celery, from_hare = keys("rc", 10), keys("rh", 10)
    for k in from_celery:
        celery_client.send_task(
            "interop.retry_once", (), {"key": k, "countdown": 1}, queue=shared, task_id=k
        )
    for k in from_hare:
        await hare_client.asend_task(
            "interop.retry_once", (), {"key": k, "countdown": 1}, queue=shared, task_id=k
        )
    await settled(workers, Counter({k: 2 for k in from_celery + from_hare}))
    for k in from_celery + from_hare:
        first, second = workers.ledger.of(k)
        assert second.at >= first.at + 1, k


async def test_delayed_tasks_on_a_shared_queue_run_once_when_due(
    workers: Fleet, celery_client: Celery, hare_client: Hare
) -> None:
    shared = workers.queue("shared")
    from_celery, from_hare = keys("dc", 10), keys("dh", 10)
    sent = time.time()
    for k in from_celery:
        celery_client.send_task("interop.record", (), {"key": k}, queue=shared, countdown=2)
    for k in from_hare:
        await hare_client.asend_task("interop.record", (), {"key": k}, queue=shared, countdown=2)
    await settled(workers, Counter(from_celery + from_hare))
    assert min(e.at for k in from_celery + from_hare for e in workers.ledger.of(k)) >= sent + 2


async def test_a_hare_worker_set_to_eta_header_delays_waits_without_spinning(
    workers: Fleet, celery_client: Celery
) -> None:
    # A task due in 3 s reaches this worker at once. It must wait (in the ladder, or held),
    # run once when due, and not bounce the message between the queue and itself meanwhile.
    k = uuid.uuid4().hex
    sent = time.time()
    celery_client.send_task(
        "interop.record", (), {"key": k}, queue=workers.queue("eta-header"), countdown=3
    )
    (run,) = await workers.runs(k, within=20)
    assert run.at >= sent + 3
    (worker,) = [w for w in workers.workers if w.name == "h-eta"]
    bounces = worker.log().count("back through the delay ladder")
    assert bounces <= 3, f"the early message went back to its queue {bounces} times"


async def test_a_chain_on_the_shared_queue_completes_whoever_runs_each_step(
    workers: Fleet, celery_client: Celery
) -> None:
    add = celery_client.tasks["interop.add"]
    shared = workers.queue("shared")
    runs = []
    for _ in range(6):  # enough chains that hare takes some middle steps
        k1, k2, k3 = keys("chain", 3)
        chain(
            add.s(1, 2, key=k1).set(queue=shared),
            add.s(3, key=k2).set(queue=shared),
            add.s(4, key=k3).set(queue=shared),
        ).apply_async()
        runs.append((k1, k2, k3))
    await settled(workers, Counter(k for trio in runs for k in trio), within=20)
    for k1, k2, k3 in runs:
        assert [workers.ledger.of(k)[0].args for k in (k1, k2, k3)] == [[1, 2], [3, 3], [6, 4]]
