"""A message whose task kills its worker process is dead-lettered after a bounded number of
deliveries instead of crashing workers forever, and the tasks behind it run.

`hare worker --processes 2` restarts a worker process that dies, as an orchestrator restarts a
pod. Quorum queues count deliveries themselves (`x-delivery-limit`) and the broker
dead-letters the message; classic queues only flag a redelivery, so the worker counts them in
`hare-redeliveries` and dead-letters the message itself.
"""

from __future__ import annotations

import re
import time

import pytest

from hare.core.envelope import Delivery
from hare.core.headers import REDELIVERIES_HEADER
from hare.core.topology import DEAD_SUFFIX
from hare.testing import eventually
from tests.apps.fault_app import Ledger
from tests.faults.conftest import Figures, Workers, producer_app, publish_jobs

pytestmark = [pytest.mark.amqp, pytest.mark.fault, pytest.mark.anyio]

DELIVERY_LIMIT = 3
GOOD = 20
GOOD_JOBS = [("fault.work", f"g{i}", 10) for i in range(GOOD)]


def _x_death_reason(delivery: Delivery) -> str | None:
    deaths = delivery.properties.headers.get("x-death")
    if not isinstance(deaths, list | tuple) or not deaths:
        return None
    reason = deaths[0].get("reason")
    return reason.decode() if isinstance(reason, bytes) else reason


@pytest.mark.timeout(120)
@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_a_message_that_kills_its_worker_is_dead_lettered_after_bounded_deliveries(
    fault_url: str,
    unique: str,
    ledger: Ledger,
    workers: Workers,
    cleanup: list[str],
    figures: Figures,
    queue_type: str,
) -> None:
    queue = f"poison-{unique}"
    cleanup.append(queue)
    app = producer_app(fault_url, queue, queue_type=queue_type, delivery_limit=DELIVERY_LIMIT)
    # One task at a time per process: the poison is all a dying process holds unsettled, so
    # the good tasks run exactly once.
    supervisor = workers.start(
        queue,
        name="supervisor",
        queue_type=queue_type,
        concurrency=1,
        processes=2,
        delivery_limit=DELIVERY_LIMIT,
    )
    good = {key for _, key, _ in GOOD_JOBS}
    try:
        await supervisor.wait_ready()
        transport = (await app.publisher()).transport
        published = time.monotonic()
        await app.asend_task("fault.crash", ["poison"], task_id="poison")
        await publish_jobs(app, GOOD_JOBS)
        dead_queue = queue + DEAD_SUFFIX
        dead: Delivery = await eventually(lambda: transport.get(dead_queue), within=90)
        dead_after = time.monotonic() - published
        await eventually(lambda: good <= ledger.refresh().ended(), within=60)
        await transport.ack(dead)
        more_dead = await transport.message_count(dead_queue)
        left = await transport.message_count(queue)
        # The last crash's process may die just as the dead letter is written: let the
        # supervisor see every death before it is told to stop.
        await eventually(
            lambda: (
                len(re.findall(r"restarting in", supervisor.log()))
                >= len(ledger.refresh().runs.get("poison", []))
            ),
            within=30,
        )
        code = await supervisor.stop()
    finally:
        await app.aclose()

    ledger.refresh()
    crashes = len(ledger.runs.get("poison", []))
    restarts = len(re.findall(r"restarting in", supervisor.log()))
    headers = dead.properties.headers
    figures(
        "poison message",
        queue_type=queue_type,
        delivery_limit=DELIVERY_LIMIT,
        processes=2,
        crashes=crashes,
        process_restarts=restarts,
        dead_letter=(
            f"x-death reason {_x_death_reason(dead)}"
            if queue_type == "quorum"
            else f"hare-dead-reason {headers.get('hare-dead-reason')}"
        ),
        seconds_to_dead_letter=round(dead_after, 1),
        good=GOOD,
        good_duplicates=sum(1 for key in good if ledger.starts()[key] > 1),
        lost=len(good - ledger.ended()),
        exit_code=code,
    )

    assert headers["task"] == "fault.crash" and headers["id"] == "poison"
    assert dead.body  # the original message, kept for inspection or a replay
    if queue_type == "quorum":
        # The broker dead-lettered it after `x-delivery-limit` returns.
        assert _x_death_reason(dead) == "delivery_limit", headers
        assert 1 <= crashes <= DELIVERY_LIMIT + 1
    else:
        # The worker counted the redeliveries itself and dead-lettered it.
        assert headers["hare-dead-reason"] == "delivery-limit", headers
        assert headers[REDELIVERIES_HEADER] == DELIVERY_LIMIT - 1
        assert crashes == DELIVERY_LIMIT
    assert restarts >= crashes  # every crash killed a process, which the supervisor restarted
    # The tasks behind it ran, each once; nothing else is dead or left over.
    assert ledger.starts() == {"poison": crashes, **dict.fromkeys(good, 1)}
    assert (more_dead, left) == (0, 0)
    assert code == 0, supervisor.log_tail()
