"""Signals and Task hooks fire in Celery's order, with Celery's arguments.

The shop's receivers (`shop/signals.py`) and its `AuditedTask` base class write every call to
the ledger. Order is asserted within a process: the caller's publish signals, and the
worker's sequence. Across processes only causality is: `before_task_publish` comes first,
but whether the caller's `after_task_publish` lands before the worker starts is a race (hare
sends it once the broker confirmed the message, by which time a worker may be running it).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.compat.conftest import Project
from tests.compat.harness import wait_until

pytestmark = pytest.mark.amqp

TIMEOUT = 10

PUBLISH = ["before_task_publish", "after_task_publish"]
SUCCESS_RUN = [
    "task_received",
    "task_prerun",
    "hook:before_start",
    "body",
    "hook:on_success",
    "task_success",
    "hook:after_return",
    "task_postrun",
]
FAILURE_RUN = [
    "task_received",
    "task_prerun",
    "hook:before_start",
    "body",
    "hook:on_failure",
    "task_failure",
    "hook:after_return",
    "task_postrun",
]


def _lines(shop: Project, task_id: str, postruns: int = 1) -> list[dict[str, Any]]:
    """Every line about `task_id`, once the worker sent `postruns` task_postrun signals."""

    def done() -> bool:
        return shop.events(task_id=task_id).count("task_postrun") >= postruns

    wait_until(done, within=TIMEOUT, what=f"{postruns} x task_postrun")
    return shop.lines(task_id=task_id)


def _split(lines: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(the caller's events, the worker's lines), after checking the first is the publish."""
    assert lines[0]["event"] == "before_task_publish"
    caller = [line["event"] for line in lines if line["pid"] == os.getpid()]
    return caller, [line for line in lines if line["pid"] != os.getpid()]


def test_success_order(shop: Project) -> None:
    result = shop.tasks.audited.delay("ok")
    assert result.get(timeout=TIMEOUT) == "ok done"
    caller, worker = _split(_lines(shop, result.id))
    assert caller == PUBLISH
    assert [line["event"] for line in worker] == SUCCESS_RUN
    by_event = {line["event"]: line for line in worker}
    assert by_event["task_prerun"]["task"] == shop.variant.task_name("shop.tasks.audited")
    assert by_event["task_prerun"]["args"] == ["ok"]
    assert by_event["task_success"]["result"] == "ok done"
    assert by_event["hook:on_success"]["retval"] == "ok done"
    assert by_event["hook:after_return"]["status"] == "SUCCESS"
    assert by_event["task_postrun"]["state"] == "SUCCESS"


def test_failure_order(shop: Project) -> None:
    result = shop.tasks.audited.delay("fail")
    with pytest.raises(ValueError, match="audited failure"):
        result.get(timeout=TIMEOUT)
    caller, worker = _split(_lines(shop, result.id))
    assert caller == PUBLISH
    assert [line["event"] for line in worker] == FAILURE_RUN
    by_event = {line["event"]: line for line in worker}
    assert by_event["hook:on_failure"]["exc"] == "ValueError"
    assert by_event["task_failure"]["exc"] == "ValueError"
    assert by_event["hook:after_return"]["status"] == "FAILURE"
    assert by_event["task_postrun"]["state"] == "FAILURE"


def test_retry_order(shop: Project) -> None:
    result = shop.tasks.audited.delay("retry")
    assert result.get(timeout=TIMEOUT) == "retry done"
    caller, worker = _split(_lines(shop, result.id, postruns=2))
    assert caller == PUBLISH
    events = [line["event"] for line in worker]
    # The retry's message is published by the worker (publish signals there too) and may
    # reach it (task_received) while the first attempt still runs its hooks: those signals'
    # places are races, so only their order among themselves is asserted.
    assert [e for e in events if e in PUBLISH] == PUBLISH
    received = [i for i, event in enumerate(events) if event == "task_received"]
    preruns = [i for i, event in enumerate(events) if event == "task_prerun"]
    assert len(received) == len(preruns) == 2
    assert received[0] < preruns[0] < received[1] < preruns[1]
    # on_retry and task_retry, and no after_return, for a retry
    assert [e for e in events if e not in PUBLISH and e != "task_received"] == [
        "task_prerun",
        "hook:before_start",
        "body",
        "hook:on_retry",
        "task_retry",
        "task_postrun",
        *SUCCESS_RUN[1:],
    ]
    retry = next(line for line in worker if line["event"] == "task_retry")
    assert retry["retries"] == 0
    states = [line["state"] for line in worker if line["event"] == "task_postrun"]
    assert states == ["RETRY", "SUCCESS"]
    assert [line["retries"] for line in worker if line["event"] == "body"] == [0, 1]


def test_every_worker_announced_ready_once(shop: Project) -> None:
    ready = shop.lines(event="worker_ready", pid=shop.worker.pid)
    assert len(ready) == 1


def test_task_received_shows_each_replacement_s_nesting_level(shop: Project, key: str) -> None:
    """Celery's suite reads `replaced_task_nesting` in task_received
    (test_replaced_task_nesting_level_*): 0 for the call sent, one more per replacement."""
    result = shop.tasks.relay.delay(key, 2)
    assert result.get(timeout=TIMEOUT) == "arrived"

    def received_thrice() -> list[dict[str, Any]]:
        lines = shop.lines(event="task_received", task_id=result.id)
        return lines if len(lines) >= 3 else []

    received = wait_until(received_thrice, within=TIMEOUT, what="3 x task_received")
    assert [line["nesting"] for line in received] == [0, 1, 2]
    assert [line["stamps"] for line in received] == [{}, {}, {}]
    assert [line["nesting"] for line in shop.lines(event="relay", key=key)] == [0, 1, 2]
