"""hare clients, Celery workers: what hare publishes, a real Celery 5 worker runs.

One Celery worker (thread pool) and one hare worker (for the last step of a chain, and for a
retry Celery sends to a hare queue) run for the whole module. hare's delays travel through its
ladder and reach the Celery worker when due.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hare import Hare
from tests.interop import hare_side
from tests.interop.harness import Fleet
from tests.interop.values import TYPED_KWARGS, assert_same_values

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]


@pytest.fixture(scope="module")
def workers(fleet: Fleet) -> Fleet:
    fleet.start_celery([fleet.queue("celery")])
    fleet.start_hare([fleet.queue("hare")])
    fleet.wait_consuming()
    return fleet


def key() -> str:
    return uuid.uuid4().hex


def signature(task: str, args: list[Any], key: str, queue: str) -> dict[str, Any]:
    """A chain step as Celery's JSON signature (hare's `chain=` option takes these)."""
    return {
        "task": task,
        "args": args,
        "kwargs": {"key": key},
        "options": {"queue": queue, "task_id": str(uuid.uuid4())},
        "subtask_type": None,
        "immutable": False,
    }


async def test_plain_tasks_async_and_from_sync_code(workers: Fleet, hare_client: Hare) -> None:
    queue = workers.queue("celery")
    add = hare_client.tasks["interop.add"]
    from_async, from_sync, by_name = key(), key(), key()
    await add.aapply_async((2, 3), {"key": from_async}, queue=queue)
    await asyncio.to_thread(add.apply_async, (40, 2), {"key": from_sync}, queue=queue)
    await hare_client.asend_task(
        "interop.record",
        (1, "two", [3.5, None, True]),
        {"key": by_name, "flag": False},
        queue=queue,
    )
    (a,) = await workers.runs(from_async)
    (s,) = await workers.runs(from_sync)
    (n,) = await workers.runs(by_name)
    assert (a.worker, a.task, a.args) == ("celery", "interop.add", [2, 3])
    assert (s.worker, s.args) == ("celery", [40, 2])
    assert (n.worker, n.args, n.kwargs) == (
        "celery",
        [1, "two", [3.5, None, True]],
        {"flag": False},
    )


async def test_datetimes_uuids_decimals_and_bytes_arrive_as_themselves(
    workers: Fleet, hare_client: Hare
) -> None:
    k = key()
    await hare_client.asend_task(
        "interop.record", (), {"key": k, **TYPED_KWARGS}, queue=workers.queue("celery")
    )
    (run,) = await workers.runs(k)
    assert run.worker == "celery"
    assert_same_values(run.kwargs, TYPED_KWARGS)


async def test_countdown_and_eta_through_the_ladder_run_no_earlier_than_due(
    workers: Fleet, hare_client: Hare
) -> None:
    counted, dated = key(), key()
    queue = workers.queue("celery")
    sent = time.time()
    eta = datetime.now(UTC) + timedelta(seconds=2.5)
    record = hare_client.tasks["interop.record"]
    await record.aapply_async((), {"key": counted}, queue=queue, countdown=2)
    await record.aapply_async((), {"key": dated}, queue=queue, eta=eta)
    (by_countdown,) = await workers.runs(counted)
    (by_eta,) = await workers.runs(dated)
    assert by_countdown.worker == by_eta.worker == "celery"
    assert by_countdown.at >= sent + 2
    assert eta.timestamp() <= by_eta.at < eta.timestamp() + 10


async def test_an_expired_task_is_not_run(workers: Fleet, hare_client: Hare) -> None:
    # Due after it expires: the Celery worker discards it on arrival ("revoked: expired").
    expired, control = key(), key()
    queue = workers.queue("celery")
    record = hare_client.tasks["interop.record"]
    await record.aapply_async((), {"key": expired}, queue=queue, countdown=2, expires=1)
    await record.aapply_async((), {"key": control}, queue=queue, countdown=3)
    await workers.runs(control)
    await asyncio.sleep(0.5)
    assert workers.ledger.of(expired) == []


@pytest.mark.parametrize("countdown", [None, 1], ids=["at-once", "via-ladder"])
async def test_the_celery_worker_retries_a_hare_task(
    workers: Fleet, hare_client: Hare, countdown: int | None
) -> None:
    # Through the ladder, the message reaches Celery from hare's delivery exchange with the
    # delay bits in its routing key; Celery's retry republishes along that route.
    k, task_id = key(), str(uuid.uuid4())
    await hare_client.tasks["interop.retry_once"].aapply_async(
        (),
        {"key": k, "countdown": 1},
        queue=workers.queue("celery"),
        task_id=task_id,
        countdown=countdown,
    )
    first, second = await workers.runs(k, 2)
    assert (first.worker, second.worker) == ("celery", "celery")
    assert (first.id, second.id) == (task_id, task_id)
    assert (first.retries, second.retries) == (0, 1)
    assert second.at >= first.at + 1


async def test_a_celery_retry_into_a_hare_queue_waits_for_its_new_eta(
    workers: Fleet, hare_client: Hare
) -> None:
    # hare sends a delayed task (with its `hare-eta` header) to Celery; Celery's retry copies
    # the message's extra headers, so the retry it sends to hare's queue carries the old
    # `hare-eta` beside the new `eta`. The new eta must win.
    k = key()
    await hare_client.tasks["interop.retry_once"].aapply_async(
        (),
        {"key": k, "countdown": 4, "retry_queue": workers.queue("hare")},
        queue=workers.queue("celery"),
        countdown=1,
    )
    first, second = await workers.runs(k, 2, within=30)
    assert (first.worker, second.worker) == ("celery", "hare")
    assert second.at >= first.at + 4, f"ran {second.at - first.at:.2f}s after the first attempt"


async def test_a_chain_started_by_hare_runs_on_celery_and_finishes_on_hare(
    workers: Fleet, hare_client: Hare
) -> None:
    # Steps 1 and 2 on Celery (Celery continues the chain), step 3 on hare.
    k1, k2, k3 = key(), key(), key()
    celery_queue, hare_queue = workers.queue("celery"), workers.queue("hare")
    remaining = [  # last step first, as Celery carries them
        signature("interop.add", [4], k3, hare_queue),
        signature("interop.add", [3], k2, celery_queue),
    ]
    await hare_client.asend_task(
        "interop.add", (1, 2), {"key": k1}, queue=celery_queue, chain=remaining
    )
    (step1,) = await workers.runs(k1)
    (step2,) = await workers.runs(k2)
    (step3,) = await workers.runs(k3)
    assert (step1.worker, step1.args) == ("celery", [1, 2])
    assert (step2.worker, step2.args) == ("celery", [3, 3])
    assert (step3.worker, step3.args) == ("hare", [6, 4])
    assert step3.id == remaining[0]["options"]["task_id"]


async def test_a_chain_started_on_hare_finishes_on_celery(
    workers: Fleet, hare_client: Hare
) -> None:
    k1, k2, k3 = key(), key(), key()
    celery_queue = workers.queue("celery")
    remaining = [
        signature("interop.add", [4], k3, celery_queue),
        signature("interop.add", [3], k2, celery_queue),
    ]
    await hare_client.asend_task(
        "interop.add", (1, 2), {"key": k1}, queue=workers.queue("hare"), chain=remaining
    )
    (step1,) = await workers.runs(k1)
    (step3,) = await workers.runs(k3, within=10)
    (step2,) = workers.ledger.of(k2)
    assert (step1.worker, step1.args) == ("hare", [1, 2])
    assert (step2.worker, step2.args) == ("celery", [3, 3])
    assert (step3.worker, step3.args) == ("celery", [6, 4])


async def test_a_hare_client_reads_rpc_results_from_the_celery_worker(workers: Fleet) -> None:
    from hare.results.handle import AsyncResult

    client = hare_side.make_app(
        workers.url, workers.queue("hare"), environ={}, connect_timeout=5, result_backend="rpc://"
    )
    try:
        queue = workers.queue("celery")
        ok = await client.asend_task("interop.add", (2, 3), {"key": key()}, queue=queue)
        failed = await client.asend_task("interop.boom", (), {"key": key()}, queue=queue)
        assert await AsyncResult(ok.id, client).aget(timeout=10) == 5
        handle = AsyncResult(failed.id, client)
        with pytest.raises(ValueError, match="boom"):
            await handle.aget(timeout=10)
        assert handle.state == "FAILURE"
    finally:
        await client.aclose()
