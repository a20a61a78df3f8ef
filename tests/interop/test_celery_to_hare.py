"""Celery clients, hare workers: what a real Celery 5 client publishes, a `hare worker` runs.

One hare worker (classic queue, as Celery declares it) and one Celery worker (for the chain that
starts on Celery) run for the whole module; the Celery client formats times in Europe/Berlin.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from celery import Celery, chain

from hare.core import ladder
from tests.interop import celery_side
from tests.interop.harness import Fleet, close_celery, queue_counts
from tests.interop.values import TYPED_KWARGS, assert_same_values

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

BERLIN = ZoneInfo(celery_side.TIMEZONE)


@pytest.fixture(scope="module")
def workers(fleet: Fleet) -> Fleet:
    fleet.start_hare([fleet.queue("hare")])
    fleet.start_celery([fleet.queue("celery")])
    fleet.wait_consuming()
    return fleet


def key() -> str:
    return uuid.uuid4().hex


async def test_plain_tasks_by_name_by_task_and_by_route(
    workers: Fleet, celery_client: Celery
) -> None:
    hare_queue = workers.queue("hare")
    by_name, by_task, by_route = key(), key(), key()
    celery_client.send_task("interop.add", (2, 3), {"key": by_name}, queue=hare_queue)
    celery_client.tasks["interop.record"].apply_async(
        (1, "two", [3.5, None, True]), {"key": by_task, "flag": False}, queue=hare_queue
    )
    # The migration pattern: Celery's task_routes sends a task by name to hare's queue.
    routed = celery_side.make_app(
        workers.url, workers.queue("celery"), task_routes={"interop.add": {"queue": hare_queue}}
    )
    try:
        routed.tasks["interop.add"].delay(40, 2, key=by_route)
    finally:
        close_celery(routed)

    (added,) = await workers.runs(by_name)
    (recorded,) = await workers.runs(by_task)
    (route,) = await workers.runs(by_route)
    assert (added.worker, added.task, added.args) == ("hare", "interop.add", [2, 3])
    assert recorded.worker == "hare"
    assert recorded.args == [1, "two", [3.5, None, True]]
    assert recorded.kwargs == {"flag": False}
    assert (route.worker, route.args) == ("hare", [40, 2])


async def test_datetimes_uuids_decimals_and_bytes_arrive_as_themselves(
    workers: Fleet, celery_client: Celery
) -> None:
    k = key()
    celery_client.send_task(
        "interop.record", (), {"key": k, **TYPED_KWARGS}, queue=workers.queue("hare")
    )
    (run,) = await workers.runs(k)
    assert run.worker == "hare"
    assert_same_values(run.kwargs, TYPED_KWARGS)


async def test_countdown_and_eta_run_no_earlier_than_due(
    workers: Fleet, celery_client: Celery
) -> None:
    # Celery puts the ETA straight on the queue; the hare worker sends it back through the
    # delay ladder and runs it when due.
    counted, dated = key(), key()
    sent = time.time()
    eta = datetime.now(BERLIN) + timedelta(seconds=2.5)  # Celery sends it as +01:00 / +02:00
    celery_client.send_task(
        "interop.record", (), {"key": counted}, queue=workers.queue("hare"), countdown=2
    )
    celery_client.send_task(
        "interop.record", (), {"key": dated}, queue=workers.queue("hare"), eta=eta
    )
    (by_countdown,) = await workers.runs(counted)
    (by_eta,) = await workers.runs(dated)
    assert by_countdown.at >= sent + 2
    assert by_eta.at >= eta.timestamp()
    assert by_eta.at < eta.timestamp() + 10  # and not absurdly late


async def test_a_far_eta_waits_in_the_broker_not_unacked_in_the_hare_worker(
    workers: Fleet, celery_client: Celery
) -> None:
    # A Celery worker would hold this message unacked for an hour (consumer_timeout bait);
    # the hare worker hands it to the ladder and holds nothing.
    k, queue = key(), workers.queue("hare")
    celery_client.send_task(
        "interop.record", (), {"key": k}, queue=queue, eta=datetime.now(BERLIN) + timedelta(hours=1)
    )

    def parked() -> bool:
        counts = queue_counts(workers.url)
        in_ladder = sum(
            ready + unacked
            for name, (ready, unacked) in counts.items()
            if name.startswith(f"{ladder.PREFIX}.L")
        )
        return counts.get(queue) == (0, 0) and in_ladder >= 1

    await workers.until(parked, within=30, what="the far-eta message parked in the ladder")
    hare = next(worker for worker in workers.workers if worker.kind == "hare")
    assert "back through the delay ladder" in hare.log()
    assert workers.ledger.of(k) == []


async def test_an_expired_task_is_not_run(workers: Fleet, celery_client: Celery) -> None:
    expired, control = key(), key()
    queue = workers.queue("hare")
    celery_client.send_task(
        "interop.record", (), {"key": expired}, queue=queue, countdown=2, expires=1
    )
    celery_client.send_task("interop.record", (), {"key": control}, queue=queue, countdown=3)
    await workers.runs(control)  # the expired one was due a second before it
    await asyncio.sleep(0.5)
    assert workers.ledger.of(expired) == []


async def test_the_hare_worker_retries_a_celery_task(workers: Fleet, celery_client: Celery) -> None:
    k = key()
    celery_client.send_task(
        "interop.retry_once", (), {"key": k, "countdown": 1}, queue=workers.queue("hare")
    )
    first, second = await workers.runs(k, 2)
    assert (first.worker, second.worker) == ("hare", "hare")
    assert second.at >= first.at + 1
    await asyncio.sleep(1.5)
    assert len(workers.ledger.of(k)) == 2  # retried once, then done


async def test_the_hare_worker_tells_a_task_its_celery_id_and_retries(
    workers: Fleet, celery_client: Celery
) -> None:
    k, task_id = key(), str(uuid.uuid4())
    celery_client.send_task(
        "interop.retry_once",
        (),
        {"key": k, "countdown": 1},
        queue=workers.queue("hare"),
        task_id=task_id,
    )
    first, second = await workers.runs(k, 2)
    assert (first.id, second.id) == (task_id, task_id)
    assert (first.retries, second.retries) == (0, 1)


async def test_a_chain_started_on_celery_finishes_on_hare(
    workers: Fleet, celery_client: Celery
) -> None:
    # Step 1 on the Celery worker, steps 2 and 3 on the hare worker: hare must run step 2
    # and publish step 3 with step 2's result prepended.
    add = celery_client.tasks["interop.add"]
    k1, k2, k3 = key(), key(), key()
    hare_queue = workers.queue("hare")
    chain(
        add.s(1, 2, key=k1).set(queue=workers.queue("celery")),
        add.s(3, key=k2).set(queue=hare_queue),
        add.s(4, key=k3).set(queue=hare_queue),
    ).apply_async()
    (step1,) = await workers.runs(k1)
    (step2,) = await workers.runs(k2)
    (step3,) = await workers.runs(k3, within=10)
    assert (step1.worker, step1.args) == ("celery", [1, 2])
    assert (step2.worker, step2.args) == ("hare", [3, 3])
    assert (step3.worker, step3.args) == ("hare", [6, 4])


async def test_a_celery_client_reads_rpc_results_from_the_hare_worker(
    workers: Fleet, celery_client: Celery
) -> None:
    queue = workers.queue("hare")
    ok = celery_client.send_task("interop.add", (2, 3), {"key": key()}, queue=queue)
    failed = celery_client.send_task("interop.boom", (), {"key": key()}, queue=queue)
    assert await asyncio.to_thread(ok.get, timeout=20) == 5
    with pytest.raises(ValueError, match="boom"):
        await asyncio.to_thread(failed.get, timeout=20)
    assert failed.state == "FAILURE"
