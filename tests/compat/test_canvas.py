"""Canvas: chain, group, chord, link and link_error, with the ids that tie them together."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from celery.canvas import StampingVisitor

from tests.compat.conftest import Project
from tests.compat.harness import wait_until

pytestmark = pytest.mark.amqp

TIMEOUT = 10


def test_chain_of_three_passes_each_result_on(shop: Project, key: str) -> None:
    canvas = shop.variant.lib("")
    step = shop.tasks.step
    result = canvas.chain(step.s([], 1, key=key), step.s(2, key=key), step.s(3, key=key)).delay()
    assert result.get(timeout=TIMEOUT) == [1, 2, 3]
    assert result.parent.get(timeout=TIMEOUT) == [1, 2]
    assert result.parent.parent.get(timeout=TIMEOUT) == [1]
    steps = shop.lines(event="step", key=key)
    assert [s["n"] for s in steps] == [1, 2, 3]
    first = steps[0]["task_id"]
    assert [s["root_id"] for s in steps] == [first, first, first]
    assert [s["parent_id"] for s in steps] == [None, first, steps[1]["task_id"]]
    assert steps[2]["task_id"] == result.id


def test_chain_with_the_pipe_operator(shop: Project) -> None:
    add, mul = shop.tasks.add, shop.tasks.mul
    assert (add.s(1, 2) | add.s(3) | mul.s(10))().get(timeout=TIMEOUT) == 60


def test_group_returns_results_in_call_order(shop: Project, key: str) -> None:
    canvas = shop.variant.lib("")
    result = canvas.group(shop.tasks.member.s(n, key=key) for n in range(5)).apply_async()
    assert result.get(timeout=TIMEOUT) == [0, 1, 4, 9, 16]
    assert result.successful() and result.completed_count() == 5
    members = shop.lines(event="member", key=key)
    assert sorted(m["n"] for m in members) == [0, 1, 2, 3, 4]
    assert {m["group"] for m in members} == {result.id}
    assert sorted(m["task_id"] for m in members) == sorted(r.id for r in result.results)


def test_chord_body_gets_the_header_results_in_order(shop: Project, key: str) -> None:
    canvas = shop.variant.lib("")
    # The first header task finishes last: the body must still see results in header order.
    header = [shop.tasks.slow_add.s(i, i, delay=(3 - i) * 0.3) for i in range(4)]
    result = canvas.chord(header)(shop.tasks.collect.s(key=key))
    assert result.get(timeout=TIMEOUT) == 12
    (collected,) = shop.lines(event="collect", key=key)
    assert collected["results"] == [0, 2, 4, 6]
    assert collected["task_id"] == result.id


def test_link_calls_back_with_the_result(shop: Project, key: str) -> None:
    result = shop.tasks.add.apply_async((2, 2), link=shop.tasks.remember.s(key=key))
    assert result.get(timeout=TIMEOUT) == 4
    lines = wait_until(lambda: shop.lines(event="remember", key=key), within=TIMEOUT, what="link")
    assert [line["value"] for line in lines] == [4]


def test_link_error_calls_the_errback(shop: Project, key: str) -> None:
    result = shop.tasks.boom.apply_async((key,), link_error=shop.tasks.on_boom.s(key=key))
    with pytest.raises(ValueError, match=f"boom {key}"):
        result.get(timeout=TIMEOUT)
    lines = wait_until(lambda: shop.lines(event="errback", key=key), within=TIMEOUT, what="errback")
    assert [(line["failed_id"], line["exc"]) for line in lines] == [
        (result.id, f"ValueError('boom {key}')")
    ]


class _MonitoringId(StampingVisitor):  # type: ignore[misc]
    def __init__(self, value: str) -> None:
        self.value = value

    def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
        return {"mtask_id": self.value}


def test_a_stamped_errback_keeps_its_stamps(shop: Project, key: str) -> None:
    """Celery's suite's test_err_linking_stamped_sig, its task_received receiver in the worker
    (the shop's): the failing task's request shows its stamps and its errback's, and the
    errback, sent with the failed id, arrives with the same stamps. A real Celery client
    sends it to either worker (hare_compat's client does not stamp)."""
    client = Celery(
        "stamper", broker=shop.env.urls["shop", shop.variant.name], set_as_current=False
    )
    try:
        name = shop.variant.task_name
        failing = client.signature(name("shop.tasks.boom"), (key,), immutable=True)
        failing.stamp(visitor=_MonitoringId("first"))
        # (one positional parameter: Celery sends it, rather than calling it with the request)
        errback = client.signature(name("shop.tasks.fire_and_forget"), (key,), immutable=True)
        failing.link_error(errback)
        failing.stamp(visitor=_MonitoringId(key))
        sent = failing.apply_async()
    finally:
        client.close()
    wait_until(lambda: shop.lines(event="fired", key=key), within=TIMEOUT, what="the errback")

    def both_received() -> list[dict[str, Any]]:
        lines = shop.lines(event="task_received", stamps={"mtask_id": key})
        return lines if len(lines) >= 2 else []

    received = wait_until(both_received, within=TIMEOUT, what="2 x task_received")
    assert [(line["task"], line["task_id"] == sent.id) for line in received] == [
        (name("shop.tasks.boom"), True),
        (name("shop.tasks.fire_and_forget"), False),
    ]
    assert [line["errbacks"] for line in received] == [
        [{"stamped_headers": ["mtask_id"], "mtask_id": key}],
        [],
    ]
