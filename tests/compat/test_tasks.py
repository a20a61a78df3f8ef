"""Tasks, their options, the request, retries, time limits and states: Celery's outcomes.

Each test runs against a Celery worker (`celery` variant) and a hare worker (`hare` variant)
running the same project files, and asserts the same outcome for both.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.compat.conftest import Project
from tests.compat.harness import wait_until

pytestmark = pytest.mark.amqp

TIMEOUT = 10


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 2) for a, b in zip(times, times[1:], strict=False)]


def test_delay_returns_the_value(shop: Project) -> None:
    assert shop.tasks.add.delay(2, 3).get(timeout=TIMEOUT) == 5
    assert shop.tasks.mul.apply_async((6, 7)).get(timeout=TIMEOUT) == 42


def test_send_task_by_name(shop: Project) -> None:
    name = shop.variant.task_name("shop.tasks.add")
    assert shop.app.send_task(name, args=(20, 22)).get(timeout=TIMEOUT) == 42


def test_the_request_describes_the_call(shop: Project, key: str) -> None:
    result = shop.tasks.whoami.apply_async((key, 1, "two"), {"flag": True}, task_id=f"id-{key}")
    seen = result.get(timeout=TIMEOUT)
    assert seen == {
        "id": f"id-{key}",
        "name": shop.variant.task_name("shop.tasks.whoami"),
        "args": [key, 1, "two"],
        "kwargs": {"flag": True},
        "retries": 0,
        "is_eager": False,
        "routing_key": "celery",
        "root_id": f"id-{key}",
        "parent_id": None,
        "group": None,
        "hostname_set": True,
        "eta": None,
        "expires": None,
    }


def test_retry_honours_countdown_and_counts(shop: Project, key: str) -> None:
    result = shop.tasks.flaky.delay(key, 2, countdown=1.0)
    wait_until(lambda: result.state == "RETRY", within=TIMEOUT, what="RETRY state")
    assert result.get(timeout=TIMEOUT) == 2
    attempts = shop.lines(event="attempt", key=key)
    assert [a["retries"] for a in attempts] == [0, 1, 2]
    assert len({a["task_id"] for a in attempts}) == 1  # a retry keeps the task id
    for gap in gaps([a["t"] for a in attempts]):
        assert 0.9 <= gap <= 3.5, gaps([a["t"] for a in attempts])
    assert result.state == "SUCCESS"


def test_max_retries_exceeded(shop: Project, key: str) -> None:
    result = shop.tasks.give_up.delay(key)
    assert result.get(timeout=TIMEOUT) == "gave up after 1 retries"
    assert [a["retries"] for a in shop.lines(event="attempt", key=key)] == [0, 1]


def test_autoretry_with_exponential_backoff(shop: Project, key: str) -> None:
    result = shop.tasks.backoff.delay(key)
    with pytest.raises(shop.tasks.TransientError, match=f"attempt 2 of {key}"):
        result.get(timeout=TIMEOUT)
    assert result.state == "FAILURE"
    attempts = shop.lines(event="attempt", key=key)
    assert [a["retries"] for a in attempts] == [0, 1, 2]
    first, second = gaps([a["t"] for a in attempts])
    assert 0.9 <= first <= 3.0, (first, second)  # retry_backoff=1: 1 s, then 2 s
    assert 1.9 <= second <= 4.5, (first, second)


def test_soft_time_limit_is_raised_in_the_task(shop: Project, key: str) -> None:
    assert shop.tasks.polite.delay(key).get(timeout=TIMEOUT) == "cleaned up"
    (line,) = shop.lines(event="soft-limit", key=key)
    assert 0.9 <= line["after"] <= 3.0


def test_states_started_then_success(shop: Project, key: str, flag: Path) -> None:
    result = shop.tasks.hold.delay(key, str(flag))
    wait_until(lambda: result.state == "STARTED", within=TIMEOUT, what="STARTED state")
    assert not result.ready()
    flag.touch()
    assert result.get(timeout=TIMEOUT) == "released"
    assert (result.state, result.successful(), result.ready()) == ("SUCCESS", True, True)


def test_update_state_progress_with_meta(shop: Project, key: str, flag: Path) -> None:
    result = shop.tasks.progress.delay(key, str(flag))
    wait_until(lambda: result.state == "PROGRESS", within=TIMEOUT, what="PROGRESS state")
    assert result.info == {"done": 1, "total": 3}
    flag.touch()
    assert result.get(timeout=TIMEOUT) == "all done"


def test_ignore_result_stores_nothing(shop: Project, key: str) -> None:
    result = shop.tasks.fire_and_forget.delay(key)
    wait_until(lambda: shop.lines(event="fired", key=key), within=TIMEOUT, what="task ran")
    wait_until(
        lambda: shop.lines(event="task_postrun", task_id=result.id), within=TIMEOUT, what="postrun"
    )
    time.sleep(0.5)  # a result stored late would show by now
    assert result.state == "PENDING"


def test_reject_fails_once_without_redelivery(shop: Project, key: str) -> None:
    result = shop.tasks.refuse.delay(key)
    wait_until(lambda: result.state == "FAILURE", within=TIMEOUT, what="FAILURE state")
    rejected = result.result
    assert isinstance(rejected, shop.variant.lib("exceptions").Reject), type(rejected)
    time.sleep(1.0)
    assert len(shop.lines(event="refuse", key=key)) == 1


def test_ignore_keeps_the_custom_state(shop: Project, key: str) -> None:
    result = shop.tasks.skip.delay(key)
    wait_until(lambda: shop.lines(event="skip", key=key), within=TIMEOUT, what="task ran")
    wait_until(
        lambda: shop.lines(event="task_postrun", task_id=result.id), within=TIMEOUT, what="postrun"
    )
    time.sleep(0.3)
    assert (result.state, result.info) == ("SKIPPED", {"why": "duplicate"})


def test_rate_limit_spreads_the_starts(shop: Project, key: str) -> None:
    results = [shop.tasks.throttled.delay(key, n) for n in range(5)]
    assert sorted(r.get(timeout=TIMEOUT) for r in results) == [0, 1, 2, 3, 4]
    starts = sorted(line["t"] for line in shop.lines(event="throttled", key=key))
    assert starts[-1] - starts[0] >= 1.5  # "2/s": one start every 0.5 s at most


def test_queue_option_and_task_routes(shop: Project, key: str) -> None:
    assert shop.tasks.urgent.delay(key).get(timeout=TIMEOUT) == "priority"
    assert shop.tasks.nightly_report.delay("eu").get(timeout=TIMEOUT) == "reports"
    assert shop.tasks.export_orders.delay(key).get(timeout=TIMEOUT) == "reports"
    result = shop.tasks.whoami.apply_async((key,), queue="priority")
    assert result.get(timeout=TIMEOUT)["routing_key"] == "priority"


@pytest.mark.hare_only  # Celery cannot run an async def task: no Celery variant is collected
def test_async_def_task_runs_on_hare(shop: Project, key: str) -> None:
    assert shop.tasks.fetch_rates.delay(key).get(timeout=TIMEOUT) == {"key": key, "eur": 1.0}
    assert len(shop.lines(event="fetched", key=key)) == 1
