"""Results: the shop's shared Redis store and billing's rpc:// replies.

The Redis store is shared: any client that knows a task id reads its state (`AsyncResult(id)`
built from nothing but the id). rpc:// sends each result to the caller that published it.
"""

from __future__ import annotations

import pytest

from tests.compat.conftest import Project
from tests.compat.harness import wait_until

pytestmark = pytest.mark.amqp

TIMEOUT = 10


# -- Redis -----------------------------------------------------------------------------------


def test_unknown_id_is_pending(shop: Project) -> None:
    result = shop.app.AsyncResult("no-such-task-id")
    assert (result.state, result.ready(), result.result) == ("PENDING", False, None)


def test_any_client_reads_the_store_by_id(shop: Project, key: str) -> None:
    sent = shop.tasks.mul.apply_async((7, 6), task_id=f"mul-{key}")
    assert sent.get(timeout=TIMEOUT) == 42
    fresh = shop.app.AsyncResult(f"mul-{key}")
    assert (fresh.state, fresh.result, fresh.successful()) == ("SUCCESS", 42, True)
    assert fresh.get(timeout=TIMEOUT) == 42
    assert fresh.date_done is not None


def test_failure_is_rebuilt_as_the_task_exception(shop: Project, key: str) -> None:
    result = shop.tasks.boom.delay(key)
    with pytest.raises(ValueError, match=f"boom {key}"):
        result.get(timeout=TIMEOUT)
    assert result.state == "FAILURE"
    assert result.failed() and not result.successful()
    assert isinstance(result.result, ValueError)
    assert "ValueError" in result.traceback
    # propagate=False hands the exception back instead of raising it
    assert isinstance(result.get(timeout=TIMEOUT, propagate=False), ValueError)


def test_get_timeout_raises_celery_timeout(shop: Project, key: str) -> None:
    exceptions = shop.variant.lib("exceptions")
    result = shop.app.AsyncResult(f"never-sent-{key}")
    with pytest.raises(exceptions.TimeoutError):
        result.get(timeout=0.5)


# -- rpc:// ----------------------------------------------------------------------------------


def test_rpc_returns_values(billing: Project) -> None:
    lines = [[2, "9.99"], [1, "0.02"]]
    assert billing.tasks.invoice_total.delay(lines).get(timeout=TIMEOUT) == "20.00"


def test_rpc_states_and_reply_to(billing: Project, key: str) -> None:
    result = billing.tasks.charge.delay(40, key)
    assert result.get(timeout=TIMEOUT) == {"charged": 40, "reply_to_set": True}
    assert (result.state, result.successful()) == ("SUCCESS", True)


def test_rpc_failure_raises_the_task_exception(billing: Project, key: str) -> None:
    result = billing.tasks.charge.delay(500, key)
    with pytest.raises(billing.tasks.PaymentDeclined, match="500 is over the limit"):
        result.get(timeout=TIMEOUT)
    assert result.state == "FAILURE"


def test_rpc_result_after_a_retry(billing: Project, key: str) -> None:
    result = billing.tasks.settle.delay(key)
    assert result.get(timeout=TIMEOUT) == 1
    attempts = wait_until(
        lambda: billing.lines(event="settle", key=key), within=TIMEOUT, what="attempts"
    )
    assert [a["retries"] for a in attempts] == [0, 1]


def test_rpc_group_and_chain(billing: Project) -> None:
    canvas = billing.variant.lib("")
    double = billing.tasks.double
    assert canvas.group(double.s(n) for n in range(4))().get(timeout=TIMEOUT) == [0, 2, 4, 6]
    assert canvas.chain(double.s(1), double.s(), double.s())().get(timeout=TIMEOUT) == 8
