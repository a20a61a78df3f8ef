"""Celery >= 5.5 native delayed delivery (quorum queues) feeding a hare worker.

A Celery client whose queue is a quorum queue on a topic exchange publishes countdown/eta tasks
to `celery_delayed_27` with the delay's 28 bits before the routing key
(`0.0.….1.0.<routing key>`); they travel down the `celery_delayed_*` levels into
`celery_delayed_delivery`, which forwards them to the queue's exchange with `#.<routing key>`.
A hare worker on that queue must run them when due, whatever their routing key says.

The `celery_delayed_*` topology is what a Celery worker declares at start-up; here the test
declares it with the same kombu functions (`declare_native_delayed_delivery_exchanges_and_queues`,
`bind_queue_to_native_delayed_delivery_exchange`) instead of starting a Celery worker for it.
The queue is declared by hare (`queue_type="quorum"`); Celery clients must declare it with
hare's arguments (`hare.core.topology.work_queue(name, "quorum").arguments`), or RabbitMQ refuses
their declaration (tested below).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import amqp
import pytest
from celery import Celery
from kombu import entity
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from hare.core.topology import work_queue
from tests.interop import celery_side
from tests.interop.harness import Fleet, amqp_connection, close_celery

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

# kombu is typed only in part: its entities are used as Any.
Exchange: Any = entity.Exchange
Queue: Any = entity.Queue


def celery_queue(name: str) -> Any:
    """The queue as a Celery client must declare it to share it with a hare quorum worker."""
    arguments = dict(work_queue(name, "quorum").arguments)
    return Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments=arguments)


@pytest.fixture(scope="module")
def workers(fleet: Fleet) -> Fleet:
    fleet.start_hare([fleet.queue("quorum")], queue_type="quorum")
    fleet.wait_consuming()
    return fleet


@pytest.fixture(scope="module")
def native(workers: Fleet) -> Iterator[Celery]:
    """A Celery client with quorum queues (so native delayed delivery is on), the delayed
    topology declared and its queues bound, as its workers would have done."""
    queues = [celery_queue(workers.queue("quorum")), celery_queue(workers.queue("peek"))]
    app = celery_side.make_app(workers.url, workers.queue("quorum"), task_queues=queues)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in queues:
            queue.bind(channel).declare()  # equal to hare's declaration, so accepted
        declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
        for queue in queues:
            bind_queue_to_native_delayed_delivery_exchange(connection, queue)
    try:
        yield app
    finally:
        close_celery(app)


async def test_native_delayed_tasks_reach_the_hare_worker_when_due(
    workers: Fleet, native: Celery
) -> None:
    counted, dated, at_once = (uuid.uuid4().hex for _ in range(3))
    queue = workers.queue("quorum")
    sent = time.time()
    native.send_task("interop.record", (), {"key": counted}, queue=queue, countdown=2)
    native.send_task(
        "interop.record", (), {"key": dated}, queue=queue, eta=native.now() + timedelta(seconds=3)
    )
    native.send_task("interop.record", (), {"key": at_once}, queue=queue)
    (now,) = await workers.runs(at_once)
    (by_countdown,) = await workers.runs(counted)
    (by_eta,) = await workers.runs(dated)
    assert now.worker == by_countdown.worker == by_eta.worker == "hare"
    assert by_countdown.at >= sent + 2
    assert by_eta.at >= sent + 3


async def test_native_delayed_messages_arrive_with_the_binary_routing_key_prefix(
    workers: Fleet, native: Celery
) -> None:
    # The same route into a queue nobody consumes, read raw: what the hare worker was given.
    peek = workers.queue("peek")
    native.send_task("interop.record", (), {"key": "peek"}, queue=peek, countdown=1)

    def arrived() -> amqp.Message | None:
        with amqp_connection(workers.url) as connection:
            return connection.channel().basic_get(peek, no_ack=True)

    message = await workers.until(arrived, within=15, what="the delayed message")
    routing_key = message.delivery_info["routing_key"]
    assert re.fullmatch(r"(?:[01]\.){28}" + re.escape(peek), routing_key), routing_key
    assert routing_key.startswith("0." * 27 + "1.")  # 1 s: the lowest bit only
    deaths = message.headers["x-death"]
    assert any(d["queue"] == "celery_delayed_0" for d in deaths)


def test_a_celery_client_declaring_only_x_queue_type_is_refused(workers: Fleet) -> None:
    # Celery's own quorum declaration lacks hare's dead-letter arguments: RabbitMQ (3.10)
    # refuses it for a queue hare declared, and refuses hare's for a queue Celery declared.
    queue = workers.queue("refusing")
    with amqp_connection(workers.url) as connection:
        arguments = dict(work_queue(queue, "quorum").arguments)
        connection.channel().queue_declare(
            queue, durable=True, auto_delete=False, arguments=arguments
        )
    app = celery_side.make_app(workers.url, queue, task_default_queue_type="quorum")
    try:
        with pytest.raises(amqp.exceptions.PreconditionFailed, match="inequivalent arg"):
            app.send_task("interop.record", (), {"key": "refused"}, queue=queue)
    finally:
        close_celery(app)
