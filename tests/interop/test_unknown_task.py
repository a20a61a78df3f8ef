"""Tasks one fleet does not know: hare keeps them as dead letters, Celery drops them.

So a migration routes by task name (Celery's `task_routes`, hare's `queue=`): each fleet's
queues carry only the tasks that fleet has.
"""

from __future__ import annotations

import uuid

import pytest
from celery import Celery

from hare import Hare
from hare.core.envelope import Delivery
from hare.core.topology import DEAD_SUFFIX
from tests.interop import celery_side
from tests.interop.harness import (
    Fleet,
    amqp_connection,
    close_celery,
    consumer_count,
    queue_counts,
)

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]


@pytest.fixture(scope="module")
def workers(fleet: Fleet) -> Fleet:
    fleet.start_hare([fleet.queue("hare")])
    fleet.start_celery([fleet.queue("celery")])
    fleet.wait_consuming()
    return fleet


async def test_a_hare_worker_dead_letters_a_task_only_celery_knows(
    workers: Fleet, celery_client: Celery, hare_client: Hare
) -> None:
    k, task_id = uuid.uuid4().hex, str(uuid.uuid4())
    queue = workers.queue("hare")
    celery_client.send_task("interop.celery_only", (7,), {"key": k}, queue=queue, task_id=task_id)
    transport = (await hare_client.publisher()).transport

    async def dead_letter() -> Delivery | None:
        return await transport.get(queue + DEAD_SUFFIX)

    dead = await workers.until(dead_letter, within=20, what="a dead letter")
    await transport.ack(dead)
    headers = dead.properties.headers
    assert headers["hare-dead-reason"] == "unknown-task"
    assert "interop.celery_only" in headers["hare-dead-detail"]
    assert headers["hare-dead-queue"] == queue
    # Celery's message, unchanged: it can be replayed to a Celery worker (`hare dlq replay`).
    assert (headers["task"], headers["id"]) == ("interop.celery_only", task_id)
    assert dead.body.startswith(b'[[7], {"key": ')
    assert workers.ledger.of(k) == []


async def test_a_celery_worker_drops_a_task_only_hare_knows(
    workers: Fleet, hare_client: Hare
) -> None:
    # Celery rejects an unregistered task without requeue: gone, unless the queue has a DLX.
    k, task_id = uuid.uuid4().hex, str(uuid.uuid4())
    queue = workers.queue("celery")
    await hare_client.asend_task("interop.hare_only", (), {"key": k}, queue=queue, task_id=task_id)
    celery = next(w for w in workers.workers if w.kind == "celery")
    await workers.until(
        lambda: "Received unregistered task of type 'interop.hare_only'" in celery.log(),
        within=20,
        what="Celery logging the unregistered task",
    )
    # Neither ready nor held unacked: rejected without requeue.
    await workers.until(
        lambda: queue_counts(workers.url).get(queue) == (0, 0), what="an empty queue"
    )
    assert workers.ledger.of(k) == []


async def test_routing_by_task_name_sends_each_fleet_only_its_own_tasks(
    workers: Fleet, hare_client: Hare
) -> None:
    hare_queue, celery_queue = workers.queue("hare"), workers.queue("celery")
    # Celery clients: task_routes by name. hare clients: queue= (per task or per call).
    router = celery_side.make_app(
        workers.url, celery_queue, task_routes={"interop.hare_only": {"queue": hare_queue}}
    )
    to_hare, to_celery = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        router.send_task("interop.hare_only", (), {"key": to_hare})
    finally:
        close_celery(router)
    await hare_client.asend_task("interop.celery_only", (), {"key": to_celery}, queue=celery_queue)
    (on_hare,) = await workers.runs(to_hare)
    (on_celery,) = await workers.runs(to_celery)
    assert (on_hare.worker, on_hare.task) == ("hare", "interop.hare_only")
    assert (on_celery.worker, on_celery.task) == ("celery", "interop.celery_only")
    with amqp_connection(workers.url) as connection:
        assert consumer_count(connection, hare_queue) == 1  # nobody else took hare's queue
